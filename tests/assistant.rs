//! The assistant's rules engine against a live cluster with known bookings: a table of
//! phrasings and the answers they must get (privacy included), and consent: a proposal
//! changes nothing until it is confirmed.

mod common;

use std::time::Duration;

use common::{run_ticket, Options, TestCluster};
use ticket::assistant::rules;
use ticket::client::Client;

/// Who asks a question of the table.
#[derive(Clone, Copy, Debug)]
enum Asker {
    User1,
    User2,
    Admin,
    Nobody,
}

/// A question of the table, and what its answer must hold.
struct Phrasing<'a> {
    who: Asker,
    /// The event in use when it is asked.
    event: &'a str,
    question: &'a str,
    /// Text the answer must contain.
    expected: String,
    /// The question of the proposal it must make, if any.
    proposal: Option<&'a str>,
}

/// Goal: at least 40 phrasings, in any case and punctuation, each get the answer they must,
/// from the live state: availability, holders (named only to the holder and to admins),
/// free seats, counts, adjacent seats, my bookings, proposals to book and cancel, the leader
/// and health, how-to help, and a list of what it can do for anything else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rules_engine_answers_a_table_of_phrasings_from_the_live_state() {
    let cluster = TestCluster::with_user1(Options::default()).await;
    let admin = cluster.admin().await;
    admin.create_event("gala", 2, 4, 0).await.expect("gala");
    let mut user1 = cluster.client();
    user1.login("user1", "mysecret").await.expect("login user1");
    let user2 = cluster.customer("user2").await;
    let b1 = user1.reserve("demo", &["S1", "S4"]).await.expect("S1 S4");
    let b1 = b1.booking.expect("booking").id;
    let b2 = user2.reserve("demo", &["S5"]).await.expect("S5");
    let b2 = b2.booking.expect("booking").id;
    user2.reserve("gala", &["A2"]).await.expect("A2");
    let nobody = cluster.client();
    let ask = |who: Asker| -> &Client {
        match who {
            Asker::User1 => &user1,
            Asker::User2 => &user2,
            Asker::Admin => &admin,
            Asker::Nobody => &nobody,
        }
    };

    use Asker::*;
    let mine_1 = format!("You have 1 booking: {b1} (demo: S1, S4).");
    let (cancel_b1, cancel_b2) = (format!("cancel {b1}"), format!("cancel {b2}"));
    let cancel_b1_proposal = format!("Cancel booking {b1}?");
    let table: Vec<Phrasing> = vec![
        // availability
        Phrasing {
            who: User1,
            event: "demo",
            question: "Is seat S2 available?",
            expected: "S2 in demo is available (as of index".into(),
            proposal: None,
        },
        Phrasing {
            who: User1,
            event: "demo",
            question: "is s2 available",
            expected: "S2 in demo is available".into(),
            proposal: None,
        },
        Phrasing {
            who: User1,
            event: "demo",
            question: "IS SEAT 2 AVAILABLE???",
            expected: "S2 in demo is available".into(),
            proposal: None,
        },
        Phrasing {
            who: User1,
            event: "demo",
            question: "seat 2 free?",
            expected: "S2 in demo is available".into(),
            proposal: None,
        },
        Phrasing {
            who: User1,
            event: "demo",
            question: "what about seat #3",
            expected: "S3 in demo is available".into(),
            proposal: None,
        },
        Phrasing {
            who: User1,
            event: "demo",
            question: "Is S5 free?",
            expected: "S5 in demo is taken".into(),
            proposal: None,
        },
        Phrasing {
            who: User1,
            event: "demo",
            question: "is S1 taken",
            expected: format!("S1 in demo is yours ({b1})"),
            proposal: None,
        },
        Phrasing {
            who: User1,
            event: "demo",
            question: "s42?",
            expected: "demo has no seat S42".into(),
            proposal: None,
        },
        Phrasing {
            who: User1,
            event: "demo",
            question: "row b seat 1 in gala",
            expected: "B1 in gala is available".into(),
            proposal: None,
        },
        Phrasing {
            who: User1,
            event: "gala",
            question: "is seat 2 free",
            expected: "Which row? gala has rows A, B".into(),
            proposal: None,
        },
        Phrasing {
            who: User1,
            event: "gala",
            question: "a2?",
            expected: "A2 in gala is taken".into(),
            proposal: None,
        },
        // who holds a seat: told only to the holder and to admins
        Phrasing {
            who: User1,
            event: "demo",
            question: "Who reserved seat S5?",
            expected: "S5 in demo is taken; who holds a seat is told only to them and to admins."
                .into(),
            proposal: None,
        },
        Phrasing {
            who: Nobody,
            event: "demo",
            question: "who has S5",
            expected: "told only to them and to admins".into(),
            proposal: None,
        },
        Phrasing {
            who: User1,
            event: "demo",
            question: "who has S1",
            expected: "You do: S1 in demo is yours.".into(),
            proposal: None,
        },
        Phrasing {
            who: User1,
            event: "demo",
            question: "who booked s3",
            expected: "Nobody: S3 in demo is free.".into(),
            proposal: None,
        },
        Phrasing {
            who: Admin,
            event: "demo",
            question: "who reserved seat S5?",
            expected: format!("S5 in demo is held by user2 ({b2})."),
            proposal: None,
        },
        Phrasing {
            who: User2,
            event: "demo",
            question: "whose is S5",
            expected: "You do: S5 in demo is yours.".into(),
            proposal: None,
        },
        Phrasing {
            who: Admin,
            event: "demo",
            question: "Who holds A2 in GALA",
            expected: "A2 in gala is held by user2".into(),
            proposal: None,
        },
        // free seats and counts
        Phrasing {
            who: User1,
            event: "demo",
            question: "Which seats are free?",
            expected: "7 of 10 seats are free in demo: S2, S3, S6, S7, S8, S9, S10".into(),
            proposal: None,
        },
        Phrasing {
            who: User1,
            event: "demo",
            question: "any seats left in gala?",
            expected: "7 of 8 seats are free in gala: A1, A3, A4, B1, B2, B3, B4".into(),
            proposal: None,
        },
        Phrasing {
            who: Nobody,
            event: "demo",
            question: "show me the available seats",
            expected: "7 of 10 seats are free in demo".into(),
            proposal: None,
        },
        Phrasing {
            who: User1,
            event: "demo",
            question: "How many seats are left?",
            expected: "7 of 10 seats are free in demo (as of index".into(),
            proposal: None,
        },
        Phrasing {
            who: User1,
            event: "demo",
            question: "how many free seats in GALA",
            expected: "7 of 8 seats are free in gala".into(),
            proposal: None,
        },
        // together
        Phrasing {
            who: User1,
            event: "demo",
            question: "Find me 2 seats together",
            expected: "S2 and S3 are free together in demo".into(),
            proposal: Some("Reserve S2 and S3 in demo?"),
        },
        Phrasing {
            who: User1,
            event: "demo",
            question: "find me three seats together",
            expected: "S6, S7 and S8 are free together in demo".into(),
            proposal: Some("Reserve S6, S7 and S8 in demo?"),
        },
        Phrasing {
            who: User1,
            event: "demo",
            question: "2 adjacent seats in gala",
            expected: "A3 and A4 are free together in gala".into(),
            proposal: Some("Reserve A3 and A4 in gala?"),
        },
        Phrasing {
            who: User1,
            event: "demo",
            question: "four seats next to each other in gala",
            expected: "B1, B2, B3 and B4 are free together in gala".into(),
            proposal: Some("Reserve B1, B2, B3 and B4 in gala?"),
        },
        Phrasing {
            who: User1,
            event: "demo",
            question: "find me 5 seats together in gala",
            expected: "There are no 5 adjacent free seats in one row of gala".into(),
            proposal: None,
        },
        Phrasing {
            who: User1,
            event: "demo",
            question: "find me 11 seats together",
            expected: "I can look for 1 to 10 seats together".into(),
            proposal: None,
        },
        Phrasing {
            who: Nobody,
            event: "demo",
            question: "a pair of seats side by side",
            expected: "S2 and S3 are free together in demo (as of index".into(),
            proposal: None,
        },
        // my bookings
        Phrasing {
            who: User1,
            event: "demo",
            question: "What did I book?",
            expected: mine_1.clone(),
            proposal: None,
        },
        Phrasing {
            who: User1,
            event: "demo",
            question: "show my bookings",
            expected: mine_1.clone(),
            proposal: None,
        },
        Phrasing {
            who: User1,
            event: "demo",
            question: "which seats do I have",
            expected: mine_1.clone(),
            proposal: None,
        },
        Phrasing {
            who: User2,
            event: "demo",
            question: "my reservations please",
            expected: "You have 2 bookings".into(),
            proposal: None,
        },
        Phrasing {
            who: Nobody,
            event: "demo",
            question: "what did I book",
            expected: "Log in first (`login USER`) so that I can see your bookings.".into(),
            proposal: None,
        },
        // booking: a proposal, never an act
        Phrasing {
            who: User1,
            event: "demo",
            question: "Book S2",
            expected: "S2 is free in demo".into(),
            proposal: Some("Reserve S2 in demo?"),
        },
        Phrasing {
            who: User1,
            event: "demo",
            question: "please reserve seats 2 and 3",
            expected: "S2 and S3 are free in demo".into(),
            proposal: Some("Reserve S2 and S3 in demo?"),
        },
        Phrasing {
            who: User1,
            event: "demo",
            question: "I'd like A1 in gala",
            expected: "A1 is free in gala".into(),
            proposal: Some("Reserve A1 in gala?"),
        },
        Phrasing {
            who: User1,
            event: "demo",
            question: "book S5",
            expected: "S5 in demo is taken: nothing was booked.".into(),
            proposal: None,
        },
        Phrasing {
            who: User1,
            event: "gala",
            question: "reserve s9",
            expected: "gala has no seat S9: nothing was booked.".into(),
            proposal: None,
        },
        Phrasing {
            who: Nobody,
            event: "demo",
            question: "book S2",
            expected: "Log in first (`login USER`) so that I can book for you.".into(),
            proposal: None,
        },
        // cancelling: a proposal too, and only of one's own
        Phrasing {
            who: User1,
            event: "demo",
            question: "Cancel S1",
            expected: "S1 is yours in demo.".into(),
            proposal: Some("Cancel S1 in demo?"),
        },
        Phrasing {
            who: User1,
            event: "demo",
            question: "cancel S5",
            expected: "S5 in demo is not yours to cancel. Nothing was cancelled.".into(),
            proposal: None,
        },
        Phrasing {
            who: User1,
            event: "demo",
            question: &cancel_b1,
            expected: format!("{b1} holds S1, S4 in demo."),
            proposal: Some(&cancel_b1_proposal),
        },
        Phrasing {
            who: User1,
            event: "demo",
            question: &cancel_b2,
            expected: format!("You have no booking {b2}."),
            proposal: None,
        },
        Phrasing {
            who: User1,
            event: "demo",
            question: "cancel my booking",
            expected: format!("What should I cancel? Name seats or a booking. {mine_1}"),
            proposal: None,
        },
        // the cluster
        Phrasing {
            who: User1,
            event: "demo",
            question: "Which node is the leader?",
            expected: " is the leader (term ".into(),
            proposal: None,
        },
        Phrasing {
            who: Nobody,
            event: "demo",
            question: "is the cluster healthy",
            expected: "3 of 3 nodes answer: the cluster is healthy.".into(),
            proposal: None,
        },
        // how-to
        Phrasing {
            who: User1,
            event: "demo",
            question: "How do I cancel?",
            expected: "To cancel, type `cancel S2`".into(),
            proposal: None,
        },
        Phrasing {
            who: User1,
            event: "demo",
            question: "how can I reserve a seat",
            expected: "To reserve, type `reserve S2`".into(),
            proposal: None,
        },
        Phrasing {
            who: Nobody,
            event: "demo",
            question: "how do I log in",
            expected: "Type `login USER`".into(),
            proposal: None,
        },
        Phrasing {
            who: Nobody,
            event: "demo",
            question: "how to sign in?",
            expected: "Type `login USER`".into(),
            proposal: None,
        },
        // anything else
        Phrasing {
            who: User1,
            event: "demo",
            question: "what's the weather",
            expected: "I did not understand that. I can answer: is seat S2 available?".into(),
            proposal: None,
        },
        Phrasing {
            who: User1,
            event: "demo",
            question: "",
            expected: "I did not understand that.".into(),
            proposal: None,
        },
    ];
    assert!(table.len() >= 40, "the table has {} phrasings", table.len());
    let mut failures = Vec::new();
    for Phrasing {
        who,
        event,
        question,
        expected,
        proposal,
    } in &table
    {
        let answer = rules::ask(ask(*who), event, question).await;
        let proposed = answer.proposal.as_ref().map(|p| p.question.as_str());
        if !answer.answer.contains(expected.as_str()) || proposed != *proposal {
            failures.push(format!(
                "{who:?} in {event}: {question:?}\n   got {:?} (proposal {proposed:?})\n  want {expected:?} (proposal {proposal:?})",
                answer.answer
            ));
        }
        assert_eq!(answer.backend, "rules");
        assert!(
            answer.tools.contains(&"list_events"),
            "{question}: {:?}",
            answer.tools
        );
    }
    assert!(
        failures.is_empty(),
        "{} of {} phrasings failed:\n{}",
        failures.len(),
        table.len(),
        failures.join("\n")
    );

    // Nothing the table proposed was carried out: the state is as it was.
    let map = user1
        .get_seats("demo", Default::default())
        .await
        .expect("seats");
    assert_eq!(map.event.expect("event").free, 7);
}

/// Goal: a proposal from `ask` changes nothing until confirmed: refused without a terminal
/// unless `--yes` (and then carried out, once), and returned undone to a script.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proposal_is_carried_out_only_when_confirmed() {
    let cluster = TestCluster::with_user1(Options::default()).await;
    let env = [("TICKET_PASSWORD", "mysecret")];
    let seat_status = || async {
        let mut client = cluster.client();
        client.login("user1", "mysecret").await.expect("login");
        let map = client
            .get_seats("demo", Default::default())
            .await
            .expect("seats");
        map.seats
            .into_iter()
            .find(|s| s.id == "S9")
            .expect("S9")
            .status
    };

    let out = run_ticket(
        &cluster.config_path,
        &["-c", "login user1", "-c", "ask book S9"],
        "",
        &env,
    );
    assert!(out.status.success());
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        said.contains(
            "Reserve S9 in demo? Not done: answer at a terminal, or ask again with --yes."
        ),
        "{said}"
    );
    assert_eq!(seat_status().await, 0, "S9 is still free");

    let dir = tempfile::tempdir().expect("temp dir");
    let script = dir.path().join("ask.rhai");
    std::fs::write(
        &script,
        "login(\"user1\", \"mysecret\");\nprint(ask(\"book S9\"));\n",
    )
    .expect("write");
    let out = run_ticket(
        &cluster.config_path,
        &["run", &script.display().to_string()],
        "",
        &[],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("(not done: a script books with reserve)")
    );
    assert_eq!(seat_status().await, 0, "S9 is still free");

    let args = ["--yes", "--json", "-c", "login user1", "-c", "ask book S9"];
    let out = run_ticket(&cluster.config_path, &args, "", &env);
    assert!(out.status.success());
    let last = String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .unwrap_or_default()
        .to_string();
    let reply: serde_json::Value = serde_json::from_str(&last).expect("json");
    assert_eq!(reply["backend"], "rules");
    assert_eq!(reply["proposal"]["action"]["kind"], "reserve");
    assert!(
        reply["carried_out"]
            .as_str()
            .is_some_and(|s| s.starts_with("reserved S9 in demo")),
        "{reply}"
    );
    cluster
        .client()
        .with_call_timeout(Duration::from_secs(5))
        .cluster_status()
        .await
        .expect("up");
    assert_eq!(
        seat_status().await,
        2,
        "S9 is user1's now (SEAT_STATUS_MINE)"
    );
}

/// What the fake chat-completions server does for one request.
#[derive(Clone)]
enum Step {
    /// Streams these chunks (as server-sent events), then `[DONE]`.
    Chunks(Vec<serde_json::Value>),
    /// Answers with this status and OpenAI's error body.
    Fail(u16, &'static str),
    /// Answers with this status and this body (other servers' error shapes).
    FailWith(u16, serde_json::Value),
    /// Streams this text, then breaks the connection off mid-body (no `[DONE]`): only as
    /// the one step of a server (see [`FakeModel::broken`]).
    Break(&'static str),
    /// Answers nothing for this long (the fault under test).
    Stall(Duration),
    /// Sends an event that is not JSON.
    Garbage,
}

/// A local server that speaks the chat-completions protocol: it records every request and
/// plays its steps in order (the last one repeats).
struct FakeModel {
    base_url: String,
    requests: std::sync::Arc<std::sync::Mutex<Vec<serde_json::Value>>>,
}

impl FakeModel {
    async fn start(steps: Vec<Step>) -> FakeModel {
        use axum::response::IntoResponse;
        if let [Step::Break(text)] = steps.as_slice() {
            return FakeModel::broken(text).await;
        }
        let requests = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = requests.clone();
        let handler = move |axum::Json(body): axum::Json<serde_json::Value>| {
            let seen = seen.clone();
            let steps = steps.clone();
            async move {
                let n = {
                    let mut seen = seen.lock().expect("lock");
                    seen.push(body);
                    seen.len() - 1
                };
                match steps[n.min(steps.len() - 1)].clone() {
                    Step::Chunks(chunks) => {
                        let mut body = String::new();
                        for c in chunks {
                            body.push_str(&format!("data: {c}\n\n"));
                        }
                        body.push_str("data: [DONE]\n\n");
                        ([("content-type", "text/event-stream")], body).into_response()
                    }
                    Step::Fail(code, message) => (
                        axum::http::StatusCode::from_u16(code).expect("status"),
                        axum::Json(serde_json::json!({ "error": { "message": message, "type": "x", "param": null, "code": null } })),
                    )
                        .into_response(),
                    Step::FailWith(code, body) => (
                        axum::http::StatusCode::from_u16(code).expect("status"),
                        axum::Json(body),
                    )
                        .into_response(),
                    Step::Break(_) => panic!("Break is the one step of a server of its own"),
                    Step::Stall(time) => {
                        tokio::time::sleep(time).await;
                        "late".into_response()
                    }
                    Step::Garbage => ([("content-type", "text/event-stream")], "data: {not json\n\n").into_response(),
                }
            }
        };
        let app = axum::Router::new().route("/v1/chat/completions", axum::routing::post(handler));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, app).await });
        FakeModel {
            base_url: format!("http://{addr}/v1"),
            requests,
        }
    }

    /// A server that answers every request with a chunked event stream holding `text`, then
    /// closes the connection before the body's end: the reply breaks off after the client has
    /// received the text (TCP delivers it before the close), which a server framework's own
    /// abort does not promise.
    async fn broken(text: &'static str) -> FakeModel {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let requests = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = requests.clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let seen = seen.clone();
                tokio::spawn(async move {
                    // The request: its head, then as many bytes of body as it says.
                    let mut read = Vec::new();
                    let mut buffer = [0u8; 4096];
                    let mut body_at = None;
                    let mut length = 0;
                    loop {
                        if let Some(at) = body_at {
                            if read.len() >= at + length {
                                break;
                            }
                        }
                        match socket.read(&mut buffer).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => read.extend_from_slice(&buffer[..n]),
                        }
                        if body_at.is_none() {
                            if let Some(end) = read.windows(4).position(|w| w == b"\r\n\r\n") {
                                let head =
                                    String::from_utf8_lossy(&read[..end]).to_ascii_lowercase();
                                length = head
                                    .lines()
                                    .find_map(|l| l.strip_prefix("content-length:"))
                                    .and_then(|v| v.trim().parse().ok())
                                    .unwrap_or(0);
                                body_at = Some(end + 4);
                            }
                        }
                    }
                    let at = body_at.unwrap_or(0);
                    if let Ok(body) = serde_json::from_slice(&read[at..]) {
                        seen.lock().expect("lock").push(body);
                    }
                    let json = serde_json::json!({ "choices": [{ "index": 0, "delta": { "content": text } }] });
                    let event = format!("data: {json}\n\n");
                    let reply = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\
                         transfer-encoding: chunked\r\n\r\n{:x}\r\n{event}\r\n",
                        event.len()
                    );
                    let _ = socket.write_all(reply.as_bytes()).await;
                    let _ = socket.shutdown().await;
                });
            }
        });
        FakeModel {
            base_url: format!("http://{addr}/v1"),
            requests,
        }
    }

    fn requests(&self) -> Vec<serde_json::Value> {
        self.requests.lock().expect("lock").clone()
    }
}

/// An assistant as the composition root makes one: its model also gets the command table's
/// tools (`event_info`), which the assistant itself does not know.
fn with_table_tools(config: &ticket::config::AssistantConfig) -> ticket::assistant::Assistant {
    let assistant = ticket::assistant::Assistant::new(config);
    assistant.set_command_tools(std::sync::Arc::new(ticket::session::tools::TableTools));
    assistant
}

fn tool_call(name: &str, arguments: &str) -> Step {
    // No id and no type: some servers leave them out.
    Step::Chunks(vec![
        serde_json::json!({ "choices": [{ "index": 0, "delta": { "tool_calls": [
        { "index": 0, "function": { "name": name, "arguments": arguments } }
    ] } }] }),
    ])
}

fn says(text: &str) -> Step {
    let (a, b) = text.split_at(text.len() / 2);
    Step::Chunks(vec![
        serde_json::json!({ "choices": [{ "index": 0, "delta": { "content": a } }] }),
        serde_json::json!({ "choices": [{ "index": 0, "delta": { "content": b } }] }),
    ])
}

fn openai_config(model: &FakeModel, fallback: bool) -> ticket::config::AssistantConfig {
    let mut config = ticket::config::AssistantConfig::default();
    config.backend = ticket::config::Backend::OpenAi;
    config.fallback_to_rules = fallback;
    config.openai.base_url = model.base_url.clone();
    config.openai.model = "test-model".into();
    config.openai.api_key_env = "TICKET_TEST_NO_SUCH_KEY".into();
    config.openai.timeout_secs = 2;
    config.openai.max_tool_calls = 3;
    config
}

/// Goal: the openai backend sends the model, the system prompt (with the user and event),
/// the question and every tool's JSON schema; runs the tool calls the model asks for against
/// the real cluster as the asker; feeds the results back; returns the model's grounded answer
/// naming the tools; and a reserve the model asks for is only a proposal until confirmed,
/// carried out once even when confirmed twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openai_backend_runs_the_tools_the_model_asks_for_against_the_cluster() {
    let cluster = TestCluster::with_user1(Options::default()).await;
    let mut user1 = cluster.client();
    user1.login("user1", "mysecret").await.expect("login");
    user1.reserve("demo", &["S1"]).await.expect("S1");
    let quiet = |_: &str| {};

    let model = FakeModel::start(vec![
        tool_call("seat_status", "{\"seat\":\"S2\"}"),
        says("S2 is free."),
    ])
    .await;
    let assistant = with_table_tools(&openai_config(&model, false));
    let answer = assistant
        .ask(&user1, "demo", "Is seat S2 available?", None, &quiet)
        .await;
    assert_eq!(answer.answer, "S2 is free.");
    assert_eq!(answer.backend, "openai");
    assert_eq!(answer.tools, ["seat_status"]);
    let sent = model.requests();
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[0]["model"], "test-model");
    assert_eq!(sent[0]["stream"], true);
    let system = sent[0]["messages"][0]["content"]
        .as_str()
        .expect("system prompt");
    assert!(
        system.contains("talking to user1") && system.contains("The event\nin use is demo"),
        "{system}"
    );
    assert_eq!(sent[0]["messages"][1]["content"], "Is seat S2 available?");
    let names: Vec<&str> = sent[0]["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .map(|t| t["function"]["name"].as_str().expect("name"))
        .collect();
    assert_eq!(
        names,
        [
            "list_events",
            "seat_status",
            "free_seats",
            "my_bookings",
            "reserve",
            "cancel",
            "cluster_status",
            "help",
            "hold",
            "my_holds",
            "confirm_hold",
            "event_info"
        ]
    );
    assert_eq!(
        sent[0]["tools"][1]["function"]["parameters"]["required"],
        serde_json::json!(["seat"])
    );
    // The tool's result went back, with the id made up for the call and the live state in it.
    let messages = sent[1]["messages"].as_array().expect("messages");
    let call_id = messages[2]["tool_calls"][0]["id"].as_str().expect("an id");
    assert_eq!(messages[3]["role"], "tool");
    assert_eq!(messages[3]["tool_call_id"], call_id);
    let result: serde_json::Value =
        serde_json::from_str(messages[3]["content"].as_str().expect("content")).expect("json");
    assert_eq!(result["seat"]["status"], "free");
    assert!(
        result["applied_index"].as_u64().is_some_and(|i| i > 0),
        "{result}"
    );

    // A reserve the model asks for is a proposal; the seat stays free until it is confirmed.
    let model = FakeModel::start(vec![
        tool_call("reserve", "{\"seats\":[\"S9\"]}"),
        says("I can reserve S9 for you; please confirm."),
    ])
    .await;
    let assistant = with_table_tools(&openai_config(&model, false));
    let answer = assistant
        .ask(&user1, "demo", "book S9 please", None, &quiet)
        .await;
    let proposal = answer.proposal.expect("a proposal");
    assert_eq!(proposal.question, "Reserve S9 in demo?");
    let held = |map: ticket::pb::booking::v1::GetSeatsReply| {
        map.seats.iter().filter(|s| s.status == 2).count()
    };
    assert_eq!(
        held(
            user1
                .get_seats("demo", Default::default())
                .await
                .expect("seats")
        ),
        1,
        "only S1"
    );
    let first = ticket::assistant::carry_out(&user1, &proposal)
        .await
        .expect("confirmed");
    let again = ticket::assistant::carry_out(&user1, &proposal)
        .await
        .expect("confirmed twice");
    assert_eq!(first, again, "the same request id gives the same booking");
    assert_eq!(
        user1.my_bookings().await.expect("bookings").bookings.len(),
        2
    );
}

/// Goal: every way the model's server can fail gives a clear message within the bound, or,
/// where the config says so, the rules engine's answer with the failure noted: a 401, a 429,
/// a stall past the timeout, a reply that is not JSON, a tool that does not exist or bad
/// arguments (refused, fed back, and the loop bounded), and an endpoint that is not there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_failures_give_clear_messages_or_the_rules_answer() {
    let cluster = TestCluster::with_user1(Options::default()).await;
    let mut user1 = cluster.client();
    user1.login("user1", "mysecret").await.expect("login");
    let quiet = |_: &str| {};
    let cases: Vec<(&str, Vec<Step>, &str)> = vec![
        (
            "401",
            vec![Step::Fail(401, "Incorrect API key provided")],
            "refused the API key (401 Unauthorized): set the variable TICKET_TEST_NO_SUCH_KEY",
        ),
        (
            "429",
            vec![Step::Fail(429, "Rate limit reached")],
            "is rate-limiting or out of quota (429)",
        ),
        // llama.cpp's error body: a numeric code.
        (
            "401 from llama.cpp",
            vec![Step::FailWith(
                401,
                serde_json::json!({ "error": { "code": 401, "message": "Invalid API Key", "type": "authentication_error" } }),
            )],
            "refused the API key (401 Unauthorized): set the variable TICKET_TEST_NO_SUCH_KEY to a valid key (it said: Invalid API Key)",
        ),
        (
            "429 from llama.cpp",
            vec![Step::FailWith(
                429,
                serde_json::json!({ "error": { "code": 429, "message": "busy", "type": "unavailable_error" } }),
            )],
            "is rate-limiting or out of quota (429); try again shortly (it said: busy)",
        ),
        // vLLM's: flat, with "object": "error".
        (
            "401 from vLLM",
            vec![Step::FailWith(
                401,
                serde_json::json!({ "object": "error", "message": "Unauthorized", "type": "Unauthorized", "param": null, "code": 401 }),
            )],
            "refused the API key (401 Unauthorized)",
        ),
        (
            "429 from vLLM",
            vec![Step::FailWith(
                429,
                serde_json::json!({ "object": "error", "message": "Too many requests", "type": "x", "param": null, "code": 429 }),
            )],
            "is rate-limiting or out of quota (429)",
        ),
        (
            "stall",
            vec![Step::Stall(Duration::from_secs(30))],
            "within 2 s",
        ),
        (
            "garbage",
            vec![Step::Garbage],
            "is not a chat-completions reply",
        ),
        (
            "unknown tool",
            vec![tool_call("drop_tables", "{}")],
            "the model asked for a tool that does not exist: 'drop_tables'",
        ),
        (
            "broken stream",
            vec![Step::Break("S2 is ")],
            "broke off",
        ),
    ];
    for (name, steps, expected) in cases {
        for fallback in [false, true] {
            let model = FakeModel::start(steps.clone()).await;
            let assistant = with_table_tools(&openai_config(&model, fallback));
            let started = std::time::Instant::now();
            let answer = assistant
                .ask(&user1, "demo", "Is seat S2 available?", None, &quiet)
                .await;
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "{name}: took {:?}",
                started.elapsed()
            );
            assert!(
                answer.answer.contains(expected),
                "{name} (fallback {fallback}): {}",
                answer.answer
            );
            match fallback {
                false => assert!(
                    answer.answer.starts_with("The openai backend failed: "),
                    "{name}: {}",
                    answer.answer
                ),
                true => {
                    assert_eq!(answer.backend, "rules", "{name}");
                    assert!(
                        answer.answer.starts_with("S2 in demo is available"),
                        "{name}: {}",
                        answer.answer
                    );
                }
            }
            if name == "unknown tool" {
                let sent = model.requests();
                let fed_back = sent[1]["messages"][3]["content"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                assert!(
                    fed_back.contains("there is no tool 'drop_tables'"),
                    "{fed_back}"
                );
            }
        }
    }
    // Bad arguments are refused and said so to the model, which can then answer.
    let model = FakeModel::start(vec![
        tool_call("seat_status", "{\"seat\":\"S2; DROP\"}"),
        says("Sorry."),
    ])
    .await;
    let assistant = with_table_tools(&openai_config(&model, false));
    let answer = assistant.ask(&user1, "demo", "S2?", None, &quiet).await;
    assert_eq!(answer.answer, "Sorry.");
    let fed_back = model.requests()[1]["messages"][3]["content"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(fed_back.contains("'seat' must be a seat id"), "{fed_back}");
    // Nobody listening.
    let mut config = openai_config(&model, false);
    config.openai.base_url = format!("http://127.0.0.1:{}/v1", common::free_ports(1)[0]);
    let answer = ticket::assistant::Assistant::new(&config)
        .ask(&user1, "demo", "S2?", None, &quiet)
        .await;
    assert!(
        answer.answer.contains("cannot reach http://127.0.0.1:"),
        "{}",
        answer.answer
    );
}

/// An `/ask` server on a free port in this process, for `assistant`: its base URL.
async fn serve_ask(cluster: &TestCluster, assistant: ticket::assistant::Assistant) -> String {
    serve_ask_shared(cluster, std::sync::Arc::new(assistant)).await
}

async fn serve_ask_shared(
    cluster: &TestCluster,
    assistant: std::sync::Arc<ticket::assistant::Assistant>,
) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(ticket::assistant::http::serve(
        listener,
        cluster.client(),
        assistant,
    ));
    base
}

/// POSTs `body` to `url` (with a bearer token if given); the status and the JSON reply.
async fn post(url: &str, body: serde_json::Value, token: Option<&str>) -> (u16, serde_json::Value) {
    let mut request = reqwest::Client::new().post(url).json(&body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let reply = request.send().await.expect("send");
    let status = reply.status().as_u16();
    let text = reply.text().await.expect("body");
    let json = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text:?}"));
    (status, json)
}

/// Goal: `POST /ask` answers `{"q": ...}` with `answer`, `backend` and `tools`; without a
/// token personal questions ask for a login, with one they are answered; a bad token is 401,
/// a bad body 400. It never changes anything: `POST /ask/confirm` with the proposal it gave
/// carries out exactly that proposal, once however often it is confirmed; confirming needs a
/// token (401), a tampered proposal is 400, a seat taken meanwhile 409; `"confirm": true` on
/// `/ask` is a 400 that points to `/ask/confirm`. The same routes answer under `/api`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_http_ask_contract_with_and_without_a_token() {
    let cluster = TestCluster::with_user1(Options::default()).await;
    let base = serve_ask(
        &cluster,
        ticket::assistant::Assistant::new(&cluster.config.assistant),
    )
    .await;
    let (ask, confirm) = (format!("{base}/ask"), format!("{base}/ask/confirm"));

    let (status, reply) = post(
        &ask,
        serde_json::json!({ "q": "Is seat S2 available?" }),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        reply["answer"]
            .as_str()
            .is_some_and(|a| a.starts_with("S2 in demo is available")),
        "{reply}"
    );
    assert_eq!(reply["backend"], "rules");
    assert_eq!(reply["tools"], serde_json::json!(["list_events", "seats"]));
    assert!(reply["proposal"].is_null(), "{reply}");
    let (_, reply) = post(&ask, serde_json::json!({ "q": "what did I book" }), None).await;
    assert!(
        reply["answer"]
            .as_str()
            .is_some_and(|a| a.starts_with("Log in first")),
        "{reply}"
    );

    let mut user1 = cluster.client();
    let token = user1.login("user1", "mysecret").await.expect("login").token;
    let token = Some(token.as_str());
    let (status, reply) = post(&ask, serde_json::json!({ "q": "book S3" }), token).await;
    assert_eq!(status, 200);
    let proposal = reply["proposal"].clone();
    assert_eq!(proposal["question"], "Reserve S3 in demo?");
    assert_eq!(
        proposal["action"],
        serde_json::json!({ "kind": "reserve", "event": "demo", "seats": ["S3"] })
    );
    assert!(
        proposal["request_id"]
            .as_str()
            .is_some_and(|id| !id.is_empty()),
        "{proposal}"
    );
    assert!(
        reply.get("carried_out").is_none(),
        "/ask books nothing: {reply}"
    );

    // The old way is refused, and says where to go.
    let (status, reply) = post(
        &ask,
        serde_json::json!({ "q": "book S3", "confirm": true }),
        token,
    )
    .await;
    assert_eq!(status, 400, "{reply}");
    assert!(
        reply["error"]
            .as_str()
            .is_some_and(|e| e.contains("POST /ask/confirm") && e.contains("\"proposal\"")),
        "{reply}"
    );

    // Confirming needs the token.
    let (status, reply) = post(&confirm, serde_json::json!({ "proposal": proposal }), None).await;
    assert_eq!(status, 401, "{reply}");
    assert!(
        reply["error"]
            .as_str()
            .is_some_and(|e| e.contains("log in")),
        "{reply}"
    );
    // A tampered proposal is refused before the cluster sees it.
    let mut tampered = proposal.clone();
    tampered["action"]["seats"] = serde_json::json!(["S3; DROP TABLE"]);
    let (status, reply) = post(&confirm, serde_json::json!({ "proposal": tampered }), token).await;
    assert_eq!(status, 400, "{reply}");
    assert!(
        reply["error"]
            .as_str()
            .is_some_and(|e| e.contains("is not a seat id")),
        "{reply}"
    );
    let (status, _) = post(&confirm, serde_json::json!({ "q": "book S3" }), token).await;
    assert_eq!(status, 400);
    assert_eq!(
        held_by_user1(&user1).await,
        Vec::<String>::new(),
        "nothing booked yet"
    );

    // Confirmed: exactly that proposal, and once however often it is confirmed.
    let (status, first) = post(&confirm, serde_json::json!({ "proposal": proposal }), token).await;
    assert_eq!(status, 200, "{first}");
    assert!(
        first["carried_out"]
            .as_str()
            .is_some_and(|s| s.starts_with("reserved S3 in demo (booking bk-")),
        "{first}"
    );
    let (status, again) = post(
        &format!("{base}/api/ask/confirm"),
        serde_json::json!({ "proposal": proposal }),
        token,
    )
    .await;
    assert_eq!(
        (status, &again),
        (200, &first),
        "a retried confirm books once"
    );
    assert_eq!(held_by_user1(&user1).await, ["S3"]);
    assert_eq!(
        user1.my_bookings().await.expect("bookings").bookings.len(),
        1
    );
    let (_, reply) = post(
        &format!("{base}/api/ask"),
        serde_json::json!({ "q": "what did I book" }),
        token,
    )
    .await;
    assert!(
        reply["answer"]
            .as_str()
            .is_some_and(|a| a.contains("(demo: S3)")),
        "{reply}"
    );

    // A seat taken between the proposal and the confirm: 409, and a message to show.
    let (_, reply) = post(&ask, serde_json::json!({ "q": "book S4" }), token).await;
    let late = reply["proposal"].clone();
    assert_eq!(late["question"], "Reserve S4 in demo?");
    cluster
        .customer("user2")
        .await
        .reserve("demo", &["S4"])
        .await
        .expect("user2 takes S4");
    let (status, reply) = post(&confirm, serde_json::json!({ "proposal": late }), token).await;
    assert_eq!(status, 409, "{reply}");
    assert!(
        reply["error"].as_str().is_some_and(|e| e.contains("S4")),
        "{reply}"
    );
    assert_eq!(held_by_user1(&user1).await, ["S3"]);

    let (status, reply) = post(
        &ask,
        serde_json::json!({ "q": "hi" }),
        Some("user1.1.forged"),
    )
    .await;
    assert_eq!(status, 401, "{reply}");
    let (status, reply) = post(
        &confirm,
        serde_json::json!({ "proposal": proposal }),
        Some("user1.1.forged"),
    )
    .await;
    assert_eq!(status, 401, "{reply}");
    let (status, reply) = post(&ask, serde_json::json!({ "question": "hi" }), None).await;
    assert_eq!(status, 400, "{reply}");
    assert!(
        reply["error"]
            .as_str()
            .is_some_and(|e| e.contains("send {\"q\": \"your question\"}")),
        "{reply}"
    );
}

/// The seats of demo that `client`'s user holds.
async fn held_by_user1(client: &ticket::client::Client) -> Vec<String> {
    client
        .get_seats("demo", Default::default())
        .await
        .expect("seats")
        .seats
        .into_iter()
        .filter(|s| s.status == 2)
        .map(|s| s.id)
        .collect()
}

/// Goal: a plugin's rules answer before the built-in ones (the shipped faq.rhai), and
/// questions they do not match still reach the rules engine.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_rules_answer_before_the_built_in_ones() {
    let cluster = TestCluster::with_user1(Options::default()).await;
    let plugins = cluster.dir.path().join("plugins");
    std::fs::create_dir(&plugins).expect("mkdir");
    let faq = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("plugins/faq.rhai");
    std::fs::copy(faq, plugins.join("faq.rhai")).expect("copy");
    let args = [
        "--json",
        "-c",
        "ask What are your OPENING hours?",
        "-c",
        "ask can I get my money back",
        "-c",
        "ask is s2 free",
    ];
    let out = run_ticket(&cluster.config_path, &args, "", &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let replies: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    assert!(
        replies[0]["answer"]
            .as_str()
            .is_some_and(|a| a.starts_with("The box office is open")),
        "{}",
        replies[0]
    );
    assert_eq!(replies[0]["tools"], serde_json::json!(["plugin_rule"]));
    assert!(
        replies[1]["answer"]
            .as_str()
            .is_some_and(|a| a.starts_with("Refunds:")),
        "{}",
        replies[1]
    );
    assert!(
        replies[2]["answer"]
            .as_str()
            .is_some_and(|a| a.starts_with("S2 in demo is available")),
        "{}",
        replies[2]
    );
}

/// Goal: the same words asked twice lead the model to the same tool call (and the same
/// made-up call id), yet each question is a request of its own: the proposals' request ids
/// differ, so the second, confirmed after the first booking was cancelled, books again
/// rather than replaying the first outcome and booking nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_tool_call_in_two_questions_is_two_requests() {
    let cluster = TestCluster::with_user1(Options::default()).await;
    let mut user1 = cluster.client();
    user1.login("user1", "mysecret").await.expect("login");
    let quiet = |_: &str| {};
    let model = FakeModel::start(vec![
        tool_call("reserve", "{\"seats\":[\"S9\"]}"),
        says("Shall I?"),
        tool_call("reserve", "{\"seats\":[\"S9\"]}"),
        says("Shall I?"),
    ])
    .await;
    let assistant = with_table_tools(&openai_config(&model, false));

    let first = assistant
        .ask(&user1, "demo", "book S9", None, &quiet)
        .await
        .proposal
        .expect("a proposal");
    ticket::assistant::carry_out(&user1, &first)
        .await
        .expect("booked");
    assert_eq!(held_by_user1(&user1).await, ["S9"]);
    user1
        .cancel_seats("demo", &["S9"])
        .await
        .expect("cancelled");
    assert_eq!(held_by_user1(&user1).await, Vec::<String>::new());

    let second = assistant
        .ask(&user1, "demo", "book S9", None, &quiet)
        .await
        .proposal
        .expect("a proposal");
    let sent = model.requests();
    assert_eq!(
        sent[1]["messages"][2]["tool_calls"][0]["id"],
        sent[3]["messages"][2]["tool_calls"][0]["id"],
        "the model's calls look the same"
    );
    assert_eq!(first.action, second.action);
    assert_ne!(first.request_id, second.request_id);
    let done = ticket::assistant::carry_out(&user1, &second)
        .await
        .expect("booked again");
    assert!(done.starts_with("reserved S9 in demo"), "{done}");
    assert_eq!(held_by_user1(&user1).await, ["S9"], "booked, not replayed");
}

/// Goal: the system prompt is the template file the config names, with {user}, {event} and
/// {time} filled in as the model's server receives it; and the template shipped as the
/// default is the one `cluster.toml`'s commented line names, which loads when uncommented.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_system_prompt_template_file_is_filled_in() {
    let cluster = TestCluster::with_user1(Options::default()).await;
    let mut user1 = cluster.client();
    user1.login("user1", "mysecret").await.expect("login");
    let model = FakeModel::start(vec![says("Hello.")]).await;
    let template = cluster.dir.path().join("venue.txt");
    std::fs::write(
        &template,
        "Venue bot for {user} about {event} at {time}; {user} again.",
    )
    .expect("template");
    let mut config = openai_config(&model, false);
    config.system_prompt = Some(template);
    let answer = ticket::assistant::Assistant::new(&config)
        .ask(&user1, "gala", "hello", None, &|_| {})
        .await;
    assert_eq!(answer.answer, "Hello.");
    let system = model.requests()[0]["messages"][0]["content"]
        .as_str()
        .expect("a system prompt")
        .to_string();
    let time = system
        .strip_prefix("Venue bot for user1 about gala at ")
        .and_then(|rest| rest.strip_suffix(" UTC; user1 again."))
        .unwrap_or_else(|| panic!("{system}"));
    // `2026-11-25 04:13`
    let shape: String = time
        .chars()
        .map(|c| if c.is_ascii_digit() { '9' } else { c })
        .collect();
    assert_eq!(shape, "9999-99-99 99:99", "{system}");

    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let shipped =
        std::fs::read_to_string(root.join("plugins/assistant_prompt.txt")).expect("shipped");
    assert_eq!(shipped, ticket::assistant::openai::DEFAULT_PROMPT);
    for key in ["{user}", "{event}", "{time}"] {
        assert!(shipped.contains(key), "the default uses {key}");
    }
    let toml = std::fs::read_to_string(root.join("cluster.toml")).expect("cluster.toml");
    let commented = "# system_prompt = \"plugins/assistant_prompt.txt\"";
    assert!(toml.contains(commented), "cluster.toml names the default");
    let uncommented = toml.replace(
        commented,
        "system_prompt = \"plugins/assistant_prompt.txt\"",
    );
    let loaded = ticket::config::Config::parse(&root.join("cluster.toml"), &uncommented)
        .expect("loads with the line uncommented");
    assert_eq!(
        loaded.assistant.system_prompt,
        Some(root.join("plugins/assistant_prompt.txt"))
    );
}

/// Goal: plugin rule handlers run off the runtime's threads within bounds of their own: one
/// that sleeps answers (it used to block inside the runtime and panic), one that loops forever
/// stops at its operations bound, one that sleeps in a loop stops at its time limit, and in
/// each failing case the built-in rules answer with the failure noted, while the server goes
/// on answering other questions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_rules_run_off_the_runtime_within_bounds() {
    let cluster = TestCluster::with_user1(Options::default()).await;
    let plugins = cluster.dir.path().join("bounded-plugins");
    std::fs::create_dir(&plugins).expect("mkdir");
    std::fs::write(
        plugins.join("rules.rhai"),
        r#"
register_rule(#{ phrases: ["nap"], run: |question| { sleep(10); "rested" } });
register_rule(#{ phrases: ["spin"], run: |question| { loop {} } });
register_rule(#{ phrases: ["doze"], run: |question| { loop { sleep(5); } } });
"#,
    )
    .expect("plugin");
    let scripting = ticket::script::Scripting::new(tokio::runtime::Handle::current(), None);
    let problems = scripting.load_plugins(&plugins);
    assert!(problems.is_empty(), "{problems:?}");
    let assistant = ticket::cli::assistant_with_plugins(&cluster.config, &scripting);
    let ask = format!("{}/ask", serve_ask_shared(&cluster, assistant).await);

    let (status, reply) = post(&ask, serde_json::json!({ "q": "nap please" }), None).await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["answer"], "rested");
    assert_eq!(reply["tools"], serde_json::json!(["plugin_rule"]));

    let started = std::time::Instant::now();
    let (status, reply) = post(&ask, serde_json::json!({ "q": "spin: is s2 free" }), None).await;
    assert_eq!(status, 200, "{reply}");
    let answer = reply["answer"].as_str().unwrap_or_default();
    assert!(answer.starts_with("S2 in demo is available"), "{reply}");
    assert!(
        answer.contains("(A plugin rule failed: rules.rhai: stopped after 200000 operations"),
        "{reply}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );

    let started = std::time::Instant::now();
    let dozing = {
        let ask = ask.clone();
        tokio::spawn(async move {
            post(&ask, serde_json::json!({ "q": "doze: is s2 free" }), None).await
        })
    };
    // Meanwhile the server answers.
    let (status, reply) = post(&ask, serde_json::json!({ "q": "is s3 free" }), None).await;
    assert_eq!(status, 200, "{reply}");
    assert!(
        reply["answer"]
            .as_str()
            .is_some_and(|a| a.starts_with("S3 in demo is available")),
        "{reply}"
    );
    let (status, reply) = dozing.await.expect("the dozing question");
    assert_eq!(status, 200, "{reply}");
    let answer = reply["answer"].as_str().unwrap_or_default();
    assert!(answer.starts_with("S2 in demo is available"), "{reply}");
    assert!(
        answer.contains("rules.rhai: stopped after 2 s, a rule's time limit"),
        "{reply}"
    );
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(6),
        "{took:?}"
    );
}

/// Goal: `assistant status` shows the backend and the openai settings; `assistant use openai`
/// makes the session's `ask` go to the model, `assistant use rules` back to the rules engine;
/// a backend that does not exist is refused with the usage.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn assistant_use_and_status_switch_the_backend_of_the_session() {
    let cluster = TestCluster::with_user1(Options::default()).await;
    let model = FakeModel::start(vec![says("From the model.")]).await;
    let mut text = std::fs::read_to_string(&cluster.config_path).expect("config");
    text.push_str(&format!(
        "\n[assistant.openai]\nbase_url = \"{}\"\nmodel = \"test-model\"\napi_key_env = \"TICKET_TEST_NO_SUCH_KEY\"\nmax_tool_calls = 5\n",
        model.base_url
    ));
    std::fs::write(&cluster.config_path, text).expect("config");
    let path = cluster.config_path.clone();
    let out = tokio::task::spawn_blocking(move || {
        let args = [
            "--json",
            "-c",
            "assistant status",
            "-c",
            "ask is s2 free",
            "-c",
            "assistant use openai",
            "-c",
            "assistant status",
            "-c",
            "ask is s2 free",
            "-c",
            "assistant use rules",
            "-c",
            "ask is s2 free",
        ];
        run_ticket(&path, &args, "", &[])
    })
    .await
    .expect("the shell");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let replies: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    assert_eq!(replies.len(), 7, "{replies:?}");
    assert_eq!(replies[0]["backend"], "rules");
    assert_eq!(replies[0]["openai"]["base_url"], model.base_url.as_str());
    assert_eq!(replies[0]["openai"]["model"], "test-model");
    assert_eq!(replies[0]["openai"]["key_set"], false);
    assert_eq!(replies[0]["openai"]["max_tool_calls"], 5);
    assert_eq!(replies[1]["backend"], "rules");
    assert_eq!(replies[2]["backend"], "openai");
    assert_eq!(replies[3]["backend"], "openai");
    assert_eq!(replies[4]["backend"], "openai");
    assert_eq!(replies[4]["answer"], "From the model.");
    assert_eq!(replies[5]["backend"], "rules");
    assert_eq!(replies[6]["backend"], "rules");
    assert!(
        replies[6]["answer"]
            .as_str()
            .is_some_and(|a| a.starts_with("S2 in demo is available")),
        "{}",
        replies[6]
    );
    assert_eq!(model.requests().len(), 1, "only the openai question");

    let path = cluster.config_path.clone();
    let out = tokio::task::spawn_blocking(move || {
        run_ticket(
            &path,
            &["-c", "assistant use rules", "-c", "assistant use gpt"],
            "",
            &[],
        )
    })
    .await
    .expect("the shell");
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("the assistant now answers with the rules engine"),
        "{said}"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("assistant use rules|openai | assistant status"),
        "{err}"
    );
}

#[test]
fn the_assistant_commands_parse() {
    use ticket::config::Backend;
    use ticket::session::command::{parse, Cmd};
    assert_eq!(
        parse("assistant use openai"),
        Ok(Some(Cmd::AssistantUse(Backend::OpenAi)))
    );
    assert_eq!(
        parse("assistant use rules"),
        Ok(Some(Cmd::AssistantUse(Backend::Rules)))
    );
    assert_eq!(parse("assistant status"), Ok(Some(Cmd::AssistantStatus)));
    for bad in [
        "assistant",
        "assistant use",
        "assistant use gpt",
        "assistant status now",
    ] {
        assert!(parse(bad).is_err(), "{bad}");
    }
    assert_eq!(
        parse("ask --openai is S2 free"),
        Ok(Some(Cmd::Ask {
            question: "is S2 free".into(),
            backend: Some(Backend::OpenAi)
        }))
    );
    assert_eq!(
        parse("ask --rules is S2 free"),
        Ok(Some(Cmd::Ask {
            question: "is S2 free".into(),
            backend: Some(Backend::Rules)
        }))
    );
}

/// Goal: at a terminal, an openai answer that breaks off after some text has streamed still
/// shows what came instead, after a line break: the rules engine's answer with the failure
/// noted. And declining a reserve that the assistant proposes says that nothing was reserved
/// (and nothing is).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_a_terminal_a_broken_stream_shows_the_fallback_and_declining_reserves_nothing() {
    let cluster = TestCluster::with_user1(Options::default()).await;
    let model = FakeModel::start(vec![Step::Break("S2 is ")]).await;
    let mut text = std::fs::read_to_string(&cluster.config_path).expect("config");
    text.push_str(&format!(
        "\n[assistant.openai]\nbase_url = \"{}\"\nmodel = \"m\"\napi_key_env = \"TICKET_TEST_NO_SUCH_KEY\"\ntimeout_secs = 10\n",
        model.base_url
    ));
    std::fs::write(&cluster.config_path, text).expect("config");

    let mut command = std::process::Command::new(common::BIN);
    command
        .arg("--config")
        .arg(&cluster.config_path)
        .current_dir(cluster.dir.path())
        .env("HOME", cluster.dir.path())
        .env("TICKET_PASSWORD", "mysecret");
    // Longer than the question's own bound (timeout_secs above), so that the fallback has
    // time to show whichever way the break reaches the client.
    let mut shell = common::terminal::Terminal::spawn(command, Duration::from_secs(45));
    shell.until("Type `help`", "greeting");
    shell.send("login user1\r");
    shell.until(r"logged in as user1 \(customer\)", "logged in");

    shell.send("ask --openai is S2 free\r");
    shell.until("S2 is ", "what streamed");
    let (_, after) = shell.until(r"The rules engine answered\.\)", "the fallback answer");
    let fallback = after
        .find("S2 in demo is available")
        .unwrap_or_else(|| panic!("the rules engine's answer is shown: {after:?}"));
    assert!(
        after[..fallback].contains('\n'),
        "on a line of its own after what streamed: {after:?}"
    );
    // The reason: the stream broke off; once, on a loaded CI machine, the break did not
    // reach the client and the question's time bound answered instead. Either way the person
    // sees why, after what streamed, with the rules engine's answer.
    let reason = &after[fallback..];
    assert!(
        reason.contains("broke off") || reason.contains("no answer from"),
        "{after:?}"
    );

    shell.send("ask book S9\r");
    shell.until(r"Reserve S9 in demo\? \[y/N\] ", "the proposal");
    shell.send("n\r");
    let (_, before) = shell.until("nothing reserved", "declined");
    assert!(!before.contains("not cancelled"), "{before:?}");
    let mut user1 = cluster.client();
    user1.login("user1", "mysecret").await.expect("login");
    assert_eq!(held_by_user1(&user1).await, Vec::<String>::new());

    let status = shell.quit();
    assert!(
        matches!(status, expectrl::process::unix::WaitStatus::Exited(_, 0)),
        "the shell exited with {status:?}"
    );
}

/// Goal: a stranger cannot switch `/ask` to the openai backend (spending the key, sending
/// questions to a third party) unless cluster.toml allows callers to choose; when it does,
/// the choice is honoured.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ask_callers_choose_the_backend_only_when_the_config_allows() {
    let cluster = TestCluster::with_user1(Options::default()).await;
    let model = FakeModel::start(vec![says("From the model.")]).await;
    let base = serve_ask(&cluster, with_table_tools(&openai_config(&model, false))).await;
    let question = serde_json::json!({ "q": "Is seat S2 available?", "backend": "openai" });
    let (status, reply) = post(&format!("{base}/ask"), question.clone(), None).await;
    assert_eq!(status, 403, "{reply}");
    assert!(
        reply["error"]
            .as_str()
            .is_some_and(|e| e.contains("ask_may_choose_backend")),
        "{reply}"
    );

    let mut allowing = openai_config(&model, false);
    allowing.backend = ticket::config::Backend::Rules;
    allowing.ask_may_choose_backend = true;
    let base = serve_ask(&cluster, ticket::assistant::Assistant::new(&allowing)).await;
    let (status, reply) = post(&format!("{base}/ask"), question, None).await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["backend"], "openai");
    assert_eq!(reply["answer"], "From the model.");
}

/// Goal: the openai backend's tools include `event info`, answering with what the shell's
/// `event info` says (the same fields, who may see holders included).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openai_backend_can_ask_for_event_info() {
    let cluster = TestCluster::with_user1(Options::default()).await;
    let mut user1 = cluster.client();
    user1.login("user1", "mysecret").await.expect("login");
    user1.reserve("demo", &["S3"]).await.expect("S3");
    let model = FakeModel::start(vec![
        tool_call("event_info", "{}"),
        says("demo has 9 free seats."),
    ])
    .await;
    let assistant = with_table_tools(&openai_config(&model, false));
    let answer = assistant
        .ask(
            &user1,
            "demo",
            "How big is this event?",
            None,
            &|_: &str| {},
        )
        .await;
    assert_eq!(answer.tools, ["event_info"]);
    let sent = model.requests();
    let offered: Vec<&str> = sent[0]["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .filter_map(|t| t["function"]["name"].as_str())
        .collect();
    assert!(offered.contains(&"event_info"), "{offered:?}");
    let schema = sent[0]["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .find(|t| t["function"]["name"] == "event_info")
        .map(|t| t["function"]["parameters"].clone())
        .expect("event_info's schema");
    assert_eq!(schema["properties"]["event"]["type"], "string");
    let messages = sent[1]["messages"].as_array().expect("messages");
    let result: serde_json::Value =
        serde_json::from_str(messages[3]["content"].as_str().expect("content")).expect("json");
    assert_eq!(result["event"]["name"], "demo");
    assert_eq!(result["event"]["taken"], 1);
    assert_eq!(result["event"]["holders_shown_to"], "the holder and admins");
}

/// Goal: the rules engine shops as a person does: "2 seats together under 50 euros" finds
/// seats at that price and proposes a hold, done only with consent; "how long is my hold"
/// tells the time left; "confirm my hold" buys it, again only with consent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rules_engine_holds_with_consent_tells_the_time_left_and_confirms() {
    let cluster = TestCluster::with_user1(Options::default()).await;
    let admin = cluster.admin().await;
    let category = |name: &str, price_minor, covers: &str| ticket::pb::booking::v1::Category {
        name: name.into(),
        price_minor,
        covers: vec![covers.into()],
        ..Default::default()
    };
    admin
        .create_event_from(ticket::pb::booking::v1::CreateEventRequest {
            name: "hall".into(),
            rows: 3,
            seats_per_row: 6,
            max_seats_per_user: 6,
            categories: vec![
                category("front", 8_000, "A"),
                category("rear", 4_500, "B-C"),
            ],
            currency: "EUR".into(),
            ..Default::default()
        })
        .await
        .expect("the priced event");
    let env = [("TICKET_PASSWORD", "mysecret")];
    let ask = |yes: bool, question: &str| {
        let question = format!("ask {question}");
        let mut args = vec!["-c", "login user1", "-c", question.as_str()];
        if yes {
            args.insert(0, "--yes");
        }
        let out = run_ticket(&cluster.config_path, &args, "", &env);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let held = || async {
        let mut client = cluster.client();
        client.login("user1", "mysecret").await.expect("login");
        client.my_holds().await.expect("holds").holds
    };

    let said = ask(false, "find me 2 seats together under 50 euros in hall");
    assert!(
        said.contains("B1 and B2 are free together at most 50.00 EUR each"),
        "{said}"
    );
    assert!(said.contains("90.00 EUR together"), "{said}");
    assert!(
        said.contains("Hold B1 and B2 in hall for checkout"),
        "{said}"
    );
    assert!(said.contains("Not done"), "{said}");
    assert!(held().await.is_empty(), "nothing is held without consent");

    let said = ask(true, "find me 2 seats together under 50 euros in hall");
    assert!(said.contains("holding B1, B2 in hall as hd-"), "{said}");
    let holds = held().await;
    assert_eq!(holds.len(), 1);
    assert_eq!(holds[0].seats, ["B1", "B2"]);

    let said = ask(false, "how long is my hold?");
    assert!(
        said.contains(&format!("{} (hall: B1, B2) has", holds[0].id)),
        "{said}"
    );
    assert!(said.contains("left, until"), "{said}");

    let said = ask(false, "confirm my hold");
    assert!(said.contains(&format!("Confirm {}", holds[0].id)), "{said}");
    assert!(held().await.len() == 1, "not confirmed without consent");
    let said = ask(true, "confirm my hold");
    assert!(
        said.contains("reserved B1, B2 in hall (booking bk-"),
        "{said}"
    );
    assert!(held().await.is_empty());

    let said = ask(false, "2 seats together under 10 euros in hall");
    assert!(
        said.contains("There are no 2 adjacent free seats at most 10.00 EUR each"),
        "{said}"
    );
}

/// Goal: the openai backend's checkout tools: `hold` proposes a hold (nothing held until the
/// person agrees), `my_holds` reads the asker's holds with the seconds left, `confirm_hold`
/// proposes buying one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openai_backend_proposes_holds_and_their_confirms() {
    let cluster = TestCluster::with_user1(Options::default()).await;
    let mut user1 = cluster.client();
    user1.login("user1", "mysecret").await.expect("login");
    let quiet = |_: &str| {};
    let model = FakeModel::start(vec![
        tool_call("hold", "{\"seats\":[\"S6\"]}"),
        says("I can hold S6."),
    ])
    .await;
    let assistant = with_table_tools(&openai_config(&model, false));
    let answer = assistant.ask(&user1, "demo", "hold S6", None, &quiet).await;
    let proposal = answer.proposal.expect("a hold proposal");
    assert!(
        proposal.question.starts_with("Hold S6 in demo"),
        "{}",
        proposal.question
    );
    assert!(
        user1.my_holds().await.expect("holds").holds.is_empty(),
        "not before consent"
    );
    ticket::assistant::carry_out(&user1, &proposal)
        .await
        .expect("held");
    let hold = user1.my_holds().await.expect("holds").holds.remove(0);

    let model = FakeModel::start(vec![
        tool_call("my_holds", "{}"),
        tool_call("confirm_hold", &format!("{{\"hold\":\"{}\"}}", hold.id)),
        says("Confirm it?"),
    ])
    .await;
    let assistant = with_table_tools(&openai_config(&model, false));
    let answer = assistant
        .ask(&user1, "demo", "how long is my hold? buy it", None, &quiet)
        .await;
    assert_eq!(answer.tools, ["my_holds", "confirm_hold"]);
    let said = model.requests()[1]["messages"].to_string();
    assert!(
        said.contains("seconds_left") && said.contains(&hold.id),
        "{said}"
    );
    let proposal = answer.proposal.expect("a confirm proposal");
    assert_eq!(
        proposal.question,
        format!("Confirm {}, buying its seats?", hold.id)
    );
    ticket::assistant::carry_out(&user1, &proposal)
        .await
        .expect("confirmed");
    assert_eq!(
        user1.my_bookings().await.expect("bookings").bookings.len(),
        1
    );
}
