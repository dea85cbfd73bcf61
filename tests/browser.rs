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
