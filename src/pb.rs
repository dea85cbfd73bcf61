//! Code generated from `proto/` at build time.

pub mod booking {
    pub mod v1 {
        tonic::include_proto!("booking.v1");
    }
}

pub mod raft {
    pub mod v1 {
        tonic::include_proto!("raft.v1");
    }
}

/// The encoded descriptors of the client API (not the peer protocol), for the gRPC
/// reflection service.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("descriptor");

/// The client API's proto source: the RPC names the metrics time each request by.
pub const BOOKING_PROTO: &str = include_str!("../proto/booking/v1/booking.proto");
