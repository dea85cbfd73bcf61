//! The booking workload of `ticket bench --mode unary` against an etcd cluster: each client,
//! on its own connection, books fresh seats one after another, a booking being one
//! transaction, "put the seat if it has never been created". Prints one JSON object with the
//! fields `ticket bench --json` uses, so the two can be put side by side.

use std::time::{Duration, Instant};

use clap::Parser;
use etcd_client::{Client, Compare, CompareOp, Txn, TxnOp};
use hdrhistogram::Histogram;

#[derive(Parser)]
struct Args {
    /// The members, comma-separated.
    #[arg(long, default_value = "127.0.0.1:2379,127.0.0.1:22379,127.0.0.1:32379")]
    endpoints: String,
    #[arg(long, default_value_t = 64)]
    clients: usize,
    #[arg(long, default_value_t = 10)]
    seconds: u64,
}

struct Tally {
    latencies_us: Histogram<u64>,
    completions_us: Vec<u64>,
    errors: u64,
}

async fn book(endpoints: Vec<String>, me: usize, start: Instant, until: Instant) -> Tally {
    let mut tally = Tally {
        latencies_us: Histogram::new_with_bounds(1, 60_000_000, 3).expect("histogram"),
        completions_us: Vec::new(),
        errors: 0,
    };
    let Ok(mut client) = Client::connect(&endpoints, None).await else {
        tally.errors += 1;
        return tally;
    };
    let run = std::process::id();
    let mut n = 0u64;
    while Instant::now() < until {
        n += 1;
        let seat = format!("seat/{run}/{me}/{n}");
        let txn = Txn::new()
            .when(vec![Compare::create_revision(seat.as_str(), CompareOp::Equal, 0)])
            .and_then(vec![TxnOp::put(seat.as_str(), format!("user{me}"), None)]);
        let began = Instant::now();
        match client.txn(txn).await {
            Ok(reply) if reply.succeeded() => {
                let done = Instant::now();
                let _ = tally.latencies_us.record((done - began).as_micros() as u64);
                tally.completions_us.push((done - start).as_micros() as u64);
            }
            _ => tally.errors += 1,
        }
    }
    tally
}

/// The longest time with no completion, counting the run's start and end.
fn longest_gap_us(completions_us: &[u64], end_us: u64) -> u64 {
    let mut last = 0;
    let mut longest = 0;
    for &at in completions_us.iter().chain(std::iter::once(&end_us)) {
        longest = longest.max(at.saturating_sub(last));
        last = at;
    }
    longest
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let endpoints: Vec<String> = args.endpoints.split(',').map(str::to_string).collect();
    let start = Instant::now();
    let until = start + Duration::from_secs(args.seconds);
    let tasks: Vec<_> = (0..args.clients)
        .map(|me| tokio::spawn(book(endpoints.clone(), me, start, until)))
        .collect();
    let mut latencies = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram");
    let mut completions = Vec::new();
    let mut errors = 0;
    for task in tasks {
        let tally = task.await.expect("client task");
        latencies.add(&tally.latencies_us).expect("same bounds");
        completions.extend(tally.completions_us);
        errors += tally.errors;
    }
    let elapsed = start.elapsed();
    completions.sort_unstable();
    let ms = |us: u64| us as f64 / 1000.0;
    let report = serde_json::json!({
        "mode": "etcd",
        "clients": args.clients,
        "seconds": elapsed.as_secs_f64(),
        "bookings": latencies.len(),
        "ops_per_sec": latencies.len() as f64 / elapsed.as_secs_f64(),
        "p50_ms": ms(latencies.value_at_quantile(0.50)),
        "p99_ms": ms(latencies.value_at_quantile(0.99)),
        "p999_ms": ms(latencies.value_at_quantile(0.999)),
        "max_gap_ms": ms(longest_gap_us(&completions, elapsed.as_micros() as u64)),
        "errors": errors,
    });
    println!("{report}");
}
