//! `ticket bench`: N clients, each on its own connection, booking distinct seats of fresh
//! events as fast as the cluster commits them. Reports bookings/s, latency percentiles from
//! an HDR histogram, errors by kind, and the longest gap in which no booking completed (the
//! outage a failover causes).
//!
//! Modes: `unary` books each seat with one Reserve; `checkout` holds it, then confirms the
//! hold (two commits a booking, as a buyer at a checkout makes them), and reports holds/s and
//! confirms/s; its latency is the hold and the confirm together; `ping` sends the no-op Ping
//! RPC through the same client and connections, the ceiling a booking is measured against;
//! `batch` books through ReserveBatch calls of `--batch` seats, each booking with its own
//! request id (its latency is its call's).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;
use tokio::sync::Mutex;
use tokio::task::JoinHandle;

use crate::client::{Client, ClientError};
use crate::config::Config;
use crate::domain::SeatMap;

/// What each bench operation is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// One Reserve a booking.
    Unary,
    /// Hold, then confirm the hold.
    Checkout,
    /// The no-op Ping RPC: what one round trip through this stack costs.
    Ping,
    /// ReserveBatch calls of `--batch` bookings, each with its own request id: what a
    /// gateway carrying many people's bookings sends.
    #[value(alias = "stream")]
    Batch,
}

pub struct BenchArgs {
    pub mode: Mode,
    /// Bookings a ReserveBatch call (batch mode).
    pub batch: usize,
    pub clients: usize,
    pub seconds: u64,
    pub json: bool,
    pub user: String,
    pub password: String,
}

/// Rows × seats of each bench event: the largest event allowed.
const ROWS: u32 = crate::limits::ROWS_MAX;
const SEATS_PER_ROW: u32 = crate::limits::SEATS_PER_ROW_MAX;
const SEATS_PER_EVENT: u64 = (ROWS * SEATS_PER_ROW) as u64;

#[derive(Serialize, Debug)]
pub struct Report {
    pub mode: Mode,
    pub clients: usize,
    pub seconds: f64,
    pub bookings: u64,
    pub bookings_per_sec: f64,
    /// Operations per second: bookings (unary) or checkouts, a hold and its confirm (checkout).
    pub ops_per_sec: f64,
    /// Holds made (checkout mode; each checkout is one hold and one confirm).
    pub holds: u64,
    pub holds_per_sec: f64,
    pub confirms_per_sec: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_gap_ms: f64,
    /// After the longest gap: how long until completions came at 90 % of the rate before it
    /// again, over a 500 ms window (none when the gap starts within the first second, or when
    /// the rate never came back).
    pub full_rate_after_gap_ms: Option<f64>,
    /// Completions in each whole second of the run.
    pub per_second: Vec<u64>,
    pub errors: BTreeMap<String, u64>,
}

/// Seats handed out to clients, and the events that hold them (made as they are needed).
struct Seats {
    run: String,
    next: AtomicU64,
    events: Mutex<Vec<String>>,
    labels: Vec<String>,
    admin: Client,
}

impl Seats {
    async fn next(&self) -> Result<(String, String), ClientError> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let event = (n / SEATS_PER_EVENT) as usize;
        let seat = (n % SEATS_PER_EVENT) as u32;
        let name = {
            let mut events = self.events.lock().await;
            while events.len() <= event {
                let name = format!("bench-{}-{}", self.run, events.len());
                self.admin
                    .create_event(&name, ROWS, SEATS_PER_ROW, SEATS_PER_EVENT as u32)
                    .await?;
                events.push(name);
            }
            events[event].clone()
        };
        let row = &self.labels[(seat / SEATS_PER_ROW) as usize];
        Ok((name, format!("{row}{}", seat % SEATS_PER_ROW + 1)))
    }
}

struct ClientResult {
    holds: u64,
    latencies_us: Histogram<u64>,
    completions_us: Vec<u64>,
    errors: BTreeMap<String, u64>,
}

impl ClientResult {
    /// Tallied by the code's name, as the report has always shown them.
    fn count_error(&mut self, error: &ClientError) {
        *self
            .errors
            .entry(format!("{:?}", error.code()))
            .or_insert(0) += 1;
    }

    fn new() -> ClientResult {
        ClientResult {
            holds: 0,
            latencies_us: Histogram::new_with_bounds(1, 60_000_000, 3)
                .expect("valid histogram bounds"),
            completions_us: Vec::new(),
            errors: BTreeMap::new(),
        }
    }
}

pub async fn run(config: &Config, args: BenchArgs) -> anyhow::Result<Report> {
    let (admin, token, leader) = log_in(config, &args).await?;
    let seats = Arc::new(Seats {
        run: crate::client::new_request_id()[..8].to_string(),
        next: AtomicU64::new(0),
        events: Mutex::new(Vec::new()),
        labels: SeatMap::default_row_labels(ROWS),
        admin,
    });
    // The first event exists before the clock starts.
    if args.mode != Mode::Ping {
        seats.next().await?;
        seats.next.store(0, Ordering::Relaxed);
    }

    let start = Instant::now();
    let stop_at = start + Duration::from_secs(args.seconds);
    let mut tasks = Vec::with_capacity(args.clients);
    for _ in 0..args.clients {
        let client = bench_client(config, &args.user, &token, leader)?;
        let task = match args.mode {
            Mode::Batch => tokio::spawn(batch_until(
                client,
                args.batch,
                seats.clone(),
                start,
                stop_at,
            )),
            mode => tokio::spawn(book_until(client, mode, seats.clone(), start, stop_at)),
        };
        tasks.push(task);
    }
    let totals = gather(tasks).await?;
    let elapsed = start.elapsed().as_secs_f64();
    Ok(report(args.mode, args.clients, elapsed, totals))
}

/// Logs the admin in: its client, its token, and the leader's id (0 when unknown).
async fn log_in(config: &Config, args: &BenchArgs) -> anyhow::Result<(Client, String, u64)> {
    let mut admin = Client::from_config(config);
    admin
        .login(&args.user, &args.password)
        .await
        .map_err(|e| anyhow::anyhow!("logging in as {}: {e}", args.user))?;
    let token = admin.token().unwrap_or_default().to_string();
    let leader = admin.cluster_status().await.map(|s| s.leader).unwrap_or(0);
    Ok((admin, token, leader))
}

/// A client of its own for one bench client, with the admin's token, aimed at the leader.
fn bench_client(config: &Config, user: &str, token: &str, leader: u64) -> anyhow::Result<Client> {
    let mut client = Client::from_config(config);
    client.set_token(user, token)?;
    if leader != 0 {
        client.prefer(leader);
    }
    Ok(client)
}

/// One bench client: reserves the next seat, one after another, until `stop_at`.
async fn book_until(
    client: Client,
    mode: Mode,
    seats: Arc<Seats>,
    start: Instant,
    stop_at: Instant,
) -> ClientResult {
    let mut result = ClientResult::new();
    while Instant::now() < stop_at {
        let t0 = Instant::now();
        let next = match mode {
            Mode::Ping => Ok((String::new(), String::new())),
            _ => seats.next().await,
        };
        let outcome = match (next, mode) {
            (Ok((event, seat)), Mode::Unary | Mode::Batch) => {
                client.reserve(&event, &[&seat]).await.map(|_| ())
            }
            (Ok((event, seat)), Mode::Checkout) => {
                checkout(&client, &event, &seat, &mut result.holds).await
            }
            (_, Mode::Ping) => client.ping().await,
            (Err(error), _) => Err(error),
        };
        let done = Instant::now();
        match outcome {
            Ok(()) => {
                let _ = result.latencies_us.record((done - t0).as_micros() as u64);
                result
                    .completions_us
                    .push((done - start).as_micros() as u64);
            }
            Err(error) => result.count_error(&error),
        }
    }
    result
}

/// One batch-mode client: ReserveBatch calls of `size` fresh seats until `stop_at`; each
/// booking made counts with the latency of its call.
async fn batch_until(
    client: Client,
    size: usize,
    seats: Arc<Seats>,
    start: Instant,
    stop_at: Instant,
) -> ClientResult {
    let mut result = ClientResult::new();
    let token = client.token().unwrap_or_default().to_string();
    while Instant::now() < stop_at {
        let mut reserves = Vec::with_capacity(size);
        for _ in 0..size {
            match seats.next().await {
                Ok((event, seat)) => reserves.push(crate::pb::booking::v1::BatchedReserve {
                    token: token.clone(),
                    event,
                    seats: vec![seat],
                    ..Default::default()
                }),
                Err(error) => result.count_error(&error),
            }
        }
        let t0 = Instant::now();
        let reply = client.reserve_batch(reserves).await;
        let done = Instant::now();
        match reply {
            Ok(reply) => {
                for outcome in reply.outcomes {
                    if outcome.booking.is_some() {
                        let _ = result.latencies_us.record((done - t0).as_micros() as u64);
                        result
                            .completions_us
                            .push((done - start).as_micros() as u64);
                    } else {
                        let code = tonic::Code::from(outcome.code);
                        *result.errors.entry(format!("{code:?}")).or_insert(0) += 1;
                    }
                }
            }
            Err(error) => result.count_error(&error),
        }
    }
    result
}

/// Holds one seat, then confirms the hold; counts the hold once it is made.
async fn checkout(
    client: &Client,
    event: &str,
    seat: &str,
    holds: &mut u64,
) -> Result<(), ClientError> {
    let request = crate::pb::booking::v1::HoldRequest {
        event: event.to_string(),
        seats: vec![seat.to_string()],
        ..Default::default()
    };
    let hold = client.hold(request).await?.hold.unwrap_or_default();
    *holds += 1;
    client.confirm_hold(&hold.id, "").await.map(|_| ())
}

/// Waits for every client and adds their results together.
async fn gather(tasks: Vec<JoinHandle<ClientResult>>) -> anyhow::Result<ClientResult> {
    let mut totals = ClientResult {
        holds: 0,
        latencies_us: Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?,
        completions_us: Vec::new(),
        errors: BTreeMap::new(),
    };
    for task in tasks {
        let result = task.await?;
        totals.latencies_us.add(&result.latencies_us)?;
        totals.holds += result.holds;
        totals.completions_us.extend(result.completions_us);
        for (kind, n) in result.errors {
            *totals.errors.entry(kind).or_insert(0) += n;
        }
    }
    Ok(totals)
}

/// The report of `clients` clients that ran for `elapsed` seconds.
fn report(mode: Mode, clients: usize, elapsed: f64, totals: ClientResult) -> Report {
    let latencies = totals.latencies_us;
    let mut completions = totals.completions_us;
    completions.sort_unstable();
    let end_us = (elapsed * 1e6) as u64;
    let gap = longest_gap(&completions, end_us);
    let max_gap_us = gap.1 - gap.0;
    let ms = |us: u64| us as f64 / 1000.0;
    let per_sec = latencies.len() as f64 / elapsed;
    let holds = match mode {
        Mode::Unary | Mode::Ping | Mode::Batch => 0,
        Mode::Checkout => totals.holds,
    };
    Report {
        mode,
        clients,
        seconds: elapsed,
        bookings: if mode == Mode::Ping {
            0
        } else {
            latencies.len()
        },
        bookings_per_sec: if mode == Mode::Ping { 0.0 } else { per_sec },
        ops_per_sec: per_sec,
        holds,
        holds_per_sec: holds as f64 / elapsed,
        confirms_per_sec: match mode {
            Mode::Unary | Mode::Ping | Mode::Batch => 0.0,
            Mode::Checkout => per_sec,
        },
        p50_ms: ms(latencies.value_at_quantile(0.50)),
        p99_ms: ms(latencies.value_at_quantile(0.99)),
        p999_ms: ms(latencies.value_at_quantile(0.999)),
        max_gap_ms: ms(max_gap_us),
        full_rate_after_gap_ms: full_rate_after(&completions, gap).map(ms),
        per_second: per_second(&completions, end_us),
        errors: totals.errors,
    }
}

/// The longest time in a run of `end_us` in which nothing completed: between two
/// completions, from the start to the first, or from the last to the end (so a cluster that
/// stops answering cannot report a small gap).
/// Returns its (start, end), in µs from the start; `completions_us` sorted.
fn longest_gap(completions_us: &[u64], end_us: u64) -> (u64, u64) {
    let mut last = 0;
    let mut longest = (0, 0);
    for &at in completions_us.iter().chain(std::iter::once(&end_us)) {
        if at.saturating_sub(last) > longest.1 - longest.0 {
            longest = (last, at);
        }
        last = at;
    }
    longest
}

/// How long after `gap` ended the completions of a 500 ms window first reached 90 % of the
/// rate before the gap (windows start at the gap's end and move by 10 ms); the time is to
/// that window's end. None if the gap starts within the first second or the rate never
/// comes back.
fn full_rate_after(completions_us: &[u64], gap: (u64, u64)) -> Option<u64> {
    const WINDOW_US: u64 = 500_000;
    const STEP_US: u64 = 10_000;
    let (start, end) = gap;
    if start < 1_000_000 {
        return None;
    }
    let before = completions_us.partition_point(|&t| t < start) as u64;
    // 90 % of the completions a window holds at the rate before the gap.
    let wanted = (before * WINDOW_US * 9).div_ceil(start * 10).max(1);
    let last = *completions_us.last()?;
    let mut from = end;
    while from + WINDOW_US <= last + STEP_US {
        let a = completions_us.partition_point(|&t| t < from);
        let b = completions_us.partition_point(|&t| t < from + WINDOW_US);
        if (b - a) as u64 >= wanted {
            return Some(from + WINDOW_US - end);
        }
        from += STEP_US;
    }
    None
}

fn per_second(completions_us: &[u64], end_us: u64) -> Vec<u64> {
    let mut counts = vec![0; end_us.div_ceil(1_000_000) as usize];
    for &t in completions_us {
        if let Some(n) = counts.get_mut((t / 1_000_000) as usize) {
            *n += 1;
        }
    }
    counts
}

pub fn print(report: &Report, json: bool) {
    if json {
        println!("{}", serde_json::to_string(report).unwrap_or_default());
        return;
    }
    if report.mode == Mode::Ping {
        println!(
            "{} clients, {:.1} s: {:.0} pings/s (no-op RPCs: the ceiling for bookings)",
            report.clients, report.seconds, report.ops_per_sec
        );
    } else {
        println!(
            "{} clients, {:.1} s: {} bookings, {:.0} bookings/s",
            report.clients, report.seconds, report.bookings, report.bookings_per_sec
        );
    }
    if report.mode == Mode::Checkout {
        println!(
            "checkout: {} holds, {:.0} holds/s, {:.0} confirms/s (latency is hold + confirm)",
            report.holds, report.holds_per_sec, report.confirms_per_sec
        );
    }
    println!(
        "latency p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms; longest gap without a completion {:.1} ms",
        report.p50_ms, report.p99_ms, report.p999_ms, report.max_gap_ms
    );
    if let Some(ms) = report.full_rate_after_gap_ms {
        println!("full rate again {ms:.0} ms after that gap");
    }
    if report.errors.is_empty() {
        println!("no errors");
    }
    for (kind, n) in &report.errors {
        println!("errors {kind}: {n}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_gap_counts_the_start_and_the_end_of_the_run() {
        assert_eq!(longest_gap(&[10, 20, 90, 100], 110), (20, 90));
        // Nothing after 30 in a run of 1000: the cluster stopped answering.
        assert_eq!(longest_gap(&[10, 20, 30], 1_000), (30, 1_000));
        // The first completion came late.
        assert_eq!(longest_gap(&[500, 510], 520), (0, 500));
        assert_eq!(longest_gap(&[], 1_000), (0, 1_000));
    }

    /// One completion a millisecond, a gap from 2 s to 3 s, then `after` (µs between
    /// completions) until 6 s.
    fn run_with_gap(after_us: u64) -> Vec<u64> {
        let mut at: Vec<u64> = (0..2_000).map(|ms| ms * 1_000).collect();
        at.extend(
            (0..)
                .map(|n| 3_000_000 + n * after_us)
                .take_while(|&t| t < 6_000_000),
        );
        at
    }

    #[test]
    fn full_rate_is_when_a_window_after_the_gap_is_back_to_the_rate_before() {
        let at = run_with_gap(1_000);
        let gap = longest_gap(&at, 6_000_000);
        assert_eq!(gap, (1_999_000, 3_000_000));
        // Back at once: the first whole window after the gap.
        assert_eq!(full_rate_after(&at, gap), Some(500_000));
        // At half the rate: never full again.
        let at = run_with_gap(2_000);
        assert_eq!(full_rate_after(&at, longest_gap(&at, 6_000_000)), None);
        // A gap within the first second has no rate before it to compare with.
        assert_eq!(full_rate_after(&[900_000, 950_000], (0, 900_000)), None);
        assert_eq!(
            per_second(&[1, 999_999, 1_000_000, 2_500_000], 2_600_000),
            [2, 1, 1]
        );
    }
}
