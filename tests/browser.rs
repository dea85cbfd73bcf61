//! The page end to end in a real headless Chromium, driven over WebDriver (chromedriver):
//! two people book, watch each other's bookings appear live, cancel, ask the assistant and
//! confirm what it proposes, and keep booking through the death of the leader.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`.ci/run` installs them); CHROMIUM and
//! CHROMEDRIVER name other binaries. A screenshot of the page is saved under
//! `target/web-test/`.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_ports, poll_for, TestCluster, WebServer};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;
use ticket::pb::booking::v1 as pb;

/// How long the page may take to show something it should show.
const SHOWN: Duration = Duration::from_secs(15);

struct Driver {
    child: Child,
    url: String,
    _profiles: tempfile::TempDir,
}

impl Driver {
    fn start() -> Driver {
        let binary = std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".into());
        let port = free_ports(1)[0];
        let child = Command::new(&binary)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start {binary} ({e}): install chromium and chromium-driver")
            });
        Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
            _profiles: tempfile::tempdir().expect("profiles dir"),
        }
    }

    /// A new browser with a profile of its own (its own sessionStorage: its own login).
    async fn browser(&self, name: &str) -> Client {
        let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
        let profile = self._profiles.path().join(name);
        let args = json!([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            // The machine has no network beyond loopback: no background calls home.
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--window-size=1280,1000",
            format!("--user-data-dir={}", profile.display()),
        ]);
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({ "binary": chromium, "args": args }),
        );
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let url = self.url.clone();
        let caps = &caps;
        let connector = &connector;
        let url = &url;
        // chromedriver takes a moment to listen: poll until it accepts a session.
        poll_for(
            "a browser session",
            Duration::from_secs(30),
            || async move {
                ClientBuilder::new(connector.clone())
                    .capabilities(caps.clone())
                    .connect(url)
                    .await
                    .ok()
            },
        )
        .await
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn css(selector: &str) -> Locator<'_> {
    Locator::Css(selector)
}

/// Waits until the element matching `selector` exists and has `attr` = `value`.
async fn wait_attr(page: &Client, selector: &str, attr: &str, value: &str) {
    let what = format!("{selector} with {attr}={value}");
    poll_for(&what, SHOWN, || async move {
        let element = page.find(css(selector)).await.ok()?;
        let got = element.attr(attr).await.ok()??;
        (got == value).then_some(())
    })
    .await;
}

/// Waits until the text of `selector` contains `needle`; returns the text.
async fn wait_text(page: &Client, selector: &str, needle: &str) -> String {
    let what = format!("{selector} saying {needle:?}");
    poll_for(&what, SHOWN, || async move {
        let text = page.find(css(selector)).await.ok()?.text().await.ok()?;
        text.contains(needle).then_some(text)
    })
    .await
}

async fn click(page: &Client, selector: &str) {
    let what = format!("a click on {selector}");
    poll_for(&what, SHOWN, || async move {
        page.find(css(selector)).await.ok()?.click().await.ok()
    })
    .await;
}

async fn log_in(page: &Client, url: &str, user: &str, password: &str) {
    page.goto(url).await.expect("open the page");
    let field = page
        .wait()
        .at_most(SHOWN)
        .for_element(css("#login-user"))
        .await;
    field
        .expect("login form")
        .send_keys(user)
        .await
        .expect("type user");
    page.find(css("#login-password"))
        .await
        .expect("password field")
        .send_keys(password)
        .await
        .expect("type password");
    click(page, "#login-button").await;
    wait_text(page, "#whoami", user).await;
}

fn seat(id: &str) -> String {
    format!("button.seat[data-seat=\"{id}\"]")
}

async fn save_screenshot(page: &Client, name: &str) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/web-test");
    std::fs::create_dir_all(&dir).expect("screenshot dir");
    let png = page.screenshot().await.expect("screenshot");
    std::fs::write(dir.join(name), png).expect("write screenshot");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_people_book_watch_ask_and_survive_a_leader_failure_in_a_real_browser() {
    let mut cluster = TestCluster::with_user1(Default::default()).await;
    cluster.customer("user2").await;
    let web = WebServer::start(&cluster);
    let url = web.url("/");
    let driver = Driver::start();
    let alice = driver.browser("alice").await;
    let bob = driver.browser("bob").await;

    log_in(&alice, &url, "user1", "mysecret").await;
    log_in(&bob, &url, "user2", "password1").await;
    wait_attr(&alice, &seat("S2"), "data-status", "free").await;
    wait_attr(&bob, &seat("S2"), "data-status", "free").await;
    // Seats say what they are in words too, for screen readers.
    let label = alice
        .find(css(&seat("S2")))
        .await
        .expect("S2")
        .attr("aria-label")
        .await;
    assert!(label
        .ok()
        .flatten()
        .is_some_and(|l| l.contains("S2") && l.contains("free")));

    // Alice picks two seats and reserves them together; they turn "mine".
    click(&alice, &seat("S2")).await;
    click(&alice, &seat("S3")).await;
    wait_attr(&alice, &seat("S3"), "aria-pressed", "true").await;
    click(&alice, "#reserve-button").await;
    wait_attr(&alice, &seat("S2"), "data-status", "mine").await;
    wait_attr(&alice, &seat("S3"), "data-status", "mine").await;
    let shown_at = Instant::now();
    // Bob's page shows them taken without a reload.
    wait_attr(&bob, &seat("S2"), "data-status", "taken").await;
    wait_attr(&bob, &seat("S3"), "data-status", "taken").await;
    let live = shown_at.elapsed();
    println!(
        "bob saw alice's booking {} ms after alice did",
        live.as_millis()
    );
    assert!(live < Duration::from_secs(2), "live update took {live:?}");
    wait_text(&alice, "#bookings", "S2").await;

    // Alice cancels one of them; both pages see it free again.
    click(&alice, &seat("S3")).await;
    click(&alice, "#cancel-button").await;
    wait_attr(&alice, &seat("S3"), "data-status", "free").await;
    wait_attr(&bob, &seat("S3"), "data-status", "free").await;

    // Bob asks the prototype's question and reads the answer.
    let ask = bob.find(css("#ask-input")).await.expect("ask box");
    ask.send_keys("Is seat S2 available?")
        .await
        .expect("type question");
    click(&bob, "#ask-button").await;
    let answer = wait_text(&bob, "#ask-answer", "S2").await;
    assert!(
        answer.to_lowercase().contains("taken") || answer.to_lowercase().contains("not available"),
        "{answer}"
    );

    // Bob asks the assistant to book; nothing changes until he confirms.
    let ask = bob.find(css("#ask-input")).await.expect("ask box");
    ask.clear().await.expect("clear");
    ask.send_keys("book S5").await.expect("type request");
    click(&bob, "#ask-button").await;
    wait_text(&bob, "#ask-answer", "S5").await;
    wait_attr(&bob, &seat("S5"), "data-status", "free").await;
    click(&bob, "#confirm-button").await;
    wait_attr(&bob, &seat("S5"), "data-status", "mine").await;
    wait_attr(&alice, &seat("S5"), "data-status", "taken").await;

    // The leader dies; Alice books again and the page carries on.
    let leader = cluster.wait_leader(Duration::from_secs(5)).await;
    cluster.kill(leader);
    click(&alice, &seat("S6")).await;
    click(&alice, "#reserve-button").await;
    wait_attr(&alice, &seat("S6"), "data-status", "mine").await;
    wait_attr(&bob, &seat("S6"), "data-status", "taken").await;
    // The cluster panel shows the dead node as such.
    let dead = format!("#cluster-panel tr[data-node=\"{leader}\"]");
    wait_text(&alice, &dead, "unreachable").await;

    save_screenshot(&alice, "page.png").await;
    // On a phone-sized window the page still shows the seat map.
    alice.set_window_size(390, 844).await.expect("phone size");
    wait_attr(&alice, &seat("S1"), "data-status", "free").await;
    save_screenshot(&alice, "page-phone.png").await;

    // A refusal reads as a sentence, not a status code: Bob confirms a proposal for a seat
    // that someone else took in the meantime.
    let ask = bob.find(css("#ask-input")).await.expect("ask box");
    ask.clear().await.expect("clear");
    ask.send_keys("book S7").await.expect("type request");
    click(&bob, "#ask-button").await;
    wait_text(&bob, "#ask-answer", "S7").await;
    let mut user1 = cluster.client();
    user1.login("user1", "mysecret").await.expect("login");
    user1
        .reserve("demo", &["S7"])
        .await
        .expect("S7 taken first");
    click(&bob, "#confirm-button").await;
    let said = wait_text(&bob, "body", "already reserved").await;
    assert!(
        !said.contains("409") && !said.contains("FAILED_PRECONDITION"),
        "{said}"
    );
    let taken = bob.find(css(&seat("S7"))).await.expect("S7");
    assert_eq!(
        taken.attr("aria-disabled").await.ok().flatten().as_deref(),
        Some("true")
    );

    // The seat map works from the keyboard: an arrow key moves to the next seat, Space
    // selects it, Escape clears the selection.
    let s8 = alice.find(css(&seat("S8"))).await.expect("S8");
    s8.send_keys("\u{E014}").await.expect("ArrowRight");
    let focused = alice.active_element().await.expect("focused element");
    assert_eq!(
        focused.attr("data-seat").await.ok().flatten().as_deref(),
        Some("S9")
    );
    focused.send_keys(" ").await.expect("Space");
    wait_attr(&alice, &seat("S9"), "aria-pressed", "true").await;
    focused.send_keys("\u{E00C}").await.expect("Escape");
    wait_attr(&alice, &seat("S9"), "aria-pressed", "false").await;

    alice.close().await.expect("close alice");
    bob.close().await.expect("close bob");
}

/// Types `text` into the field `selector`, replacing what it held.
async fn fill(page: &Client, selector: &str, text: &str) {
    let field = page
        .wait()
        .at_most(SHOWN)
        .for_element(css(selector))
        .await
        .unwrap_or_else(|e| panic!("no {selector}: {e}"));
    field.clear().await.expect("clear the field");
    field.send_keys(text).await.expect("type into the field");
}

/// Waits until an element matching `selector` exists; returns it.
async fn wait_for(page: &Client, selector: &str) -> fantoccini::elements::Element {
    let what = format!("an element {selector}");
    poll_for(&what, SHOWN, || async move {
        page.find(css(selector)).await.ok()
    })
    .await
}

/// Goal: checkout in a real browser. A stranger signs up and is logged in; a customer holds
/// a seat, watches the hold's countdown tick, confirms it and gets a ticket with its QR code
/// drawn inline; the other page sees the seat held, then taken, live. A hold that lapses
/// turns its seat free on both pages without a reload, and a priced event shows its
/// categories and prices in the legend.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkout_signs_up_holds_counts_down_confirms_and_shows_a_qr_ticket() {
    let cluster = TestCluster::with_user1(Default::default()).await;
    let web = WebServer::start(&cluster);
    let url = web.url("/");
    let driver = Driver::start();
    let alice = driver.browser("alice").await;
    let carol = driver.browser("carol").await;

    // Carol has no account: she signs up next to the login form and is logged in.
    carol.goto(&url).await.expect("open the page");
    fill(&carol, "#signup-user", "carol").await;
    fill(&carol, "#signup-password", "carol-secret").await;
    click(&carol, "#signup-button").await;
    wait_text(&carol, "#whoami", "carol").await;
    wait_attr(&carol, &seat("S2"), "data-status", "free").await;

    // Alice holds S2: it is hers in checkout, and held (by someone) on Carol's page.
    log_in(&alice, &url, "user1", "mysecret").await;
    click(&alice, &seat("S2")).await;
    wait_attr(&alice, &seat("S2"), "aria-pressed", "true").await;
    click(&alice, "#hold-button").await;
    wait_attr(&alice, &seat("S2"), "data-status", "held_by_you").await;
    wait_attr(&carol, &seat("S2"), "data-status", "held").await;
    wait_text(&alice, "#holds", "S2").await;

    // The countdown is shown and ticks.
    let first = wait_text(&alice, "#holds .countdown", "left").await;
    let what = format!("the countdown to move on from {first:?}");
    let alice_ref = &alice;
    let first_ref = &first;
    let later = poll_for(&what, SHOWN, || async move {
        let text = alice_ref
            .find(css("#holds .countdown"))
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        (text.contains("left") && text != *first_ref).then_some(text)
    })
    .await;
    println!("countdown went from {first:?} to {later:?}");
    save_screenshot(&alice, "checkout-hold.png").await;

    // Confirm: the seat is Alice's, taken on Carol's page, and its ticket has a QR code.
    fill(&alice, "#holds input.payment-ref", "card-4242").await;
    click(&alice, "#holds .confirm-hold").await;
    wait_attr(&alice, &seat("S2"), "data-status", "mine").await;
    wait_attr(&carol, &seat("S2"), "data-status", "taken").await;
    let qr = wait_for(&alice, "#tickets li[data-seat=\"S2\"] svg").await;
    let label = qr
        .attr("aria-label")
        .await
        .ok()
        .flatten()
        .unwrap_or_default();
    assert!(label.contains("S2"), "{label}");
    wait_text(&alice, "#holds-empty", "No holds").await;
    wait_text(&alice, "#bookings", "S2").await;
    save_screenshot(&alice, "checkout.png").await;

    // A short hold made elsewhere (as from the shell) shows on Alice's page, then lapses:
    // the seat turns free on both pages without a reload, and the hold leaves the panel.
    let mut shell = cluster.client();
    shell.login("user1", "mysecret").await.expect("login");
    shell
        .hold(pb::HoldRequest {
            event: "demo".into(),
            seats: vec!["S9".into()],
            duration_ms: 3_000,
            ..Default::default()
        })
        .await
        .expect("hold S9 briefly");
    wait_attr(&alice, &seat("S9"), "data-status", "held_by_you").await;
    wait_attr(&carol, &seat("S9"), "data-status", "held").await;
    wait_text(&alice, "#holds", "S9").await;
    wait_attr(&alice, &seat("S9"), "data-status", "free").await;
    wait_attr(&carol, &seat("S9"), "data-status", "free").await;
    wait_text(&alice, "#holds-empty", "No holds").await;

    // A priced event: its categories and prices in the legend, and the best seats of one.
    cluster
        .admin()
        .await
        .create_event_from(pb::CreateEventRequest {
            name: "gala".into(),
            rows: 3,
            seats_per_row: 6,
            max_seats_per_user: 8,
            categories: vec![
                pb::Category {
                    name: "front".into(),
                    price_minor: 8_000,
                    covers: vec!["A".into()],
                    ..Default::default()
                },
                pb::Category {
                    name: "rear".into(),
                    price_minor: 4_500,
                    covers: vec!["B-C".into()],
                    ..Default::default()
                },
            ],
            currency: "EUR".into(),
            ..Default::default()
        })
        .await
        .expect("the priced event");
    alice
        .goto(&format!("{url}#event=gala"))
        .await
        .expect("open the priced event");
    wait_text(&alice, "#category-legend", "80.00 EUR").await;
    wait_text(&alice, "#category-legend", "rear").await;
    wait_attr(&alice, &seat("A1"), "data-category", "0").await;
    wait_attr(&alice, &seat("B1"), "data-category", "1").await;
    wait_for(&alice, "#best-category option[value=\"rear\"]").await;
    let picker = alice
        .find(css("#best-category"))
        .await
        .expect("category select");
    picker
        .select_by_value("rear")
        .await
        .expect("choose the rear category");
    fill(&alice, "#best-count", "2").await;
    click(&alice, "#best-button").await;
    wait_text(&alice, "#holds", "90.00 EUR").await;
    save_screenshot(&alice, "checkout-priced.png").await;
    let held_rear = "button.seat[data-status=\"held_by_you\"][data-category=\"1\"]";
    wait_for(&alice, held_rear).await;
    click(&alice, "#holds .release-hold").await;
    wait_text(&alice, "#holds-empty", "No holds").await;
    let alice_ref = &alice;
    poll_for("the released seats free again", SHOWN, || async move {
        let held = alice_ref.find_all(css(held_rear)).await.ok()?;
        held.is_empty().then_some(())
    })
    .await;

    alice.close().await.expect("close alice");
    carol.close().await.expect("close carol");
}
