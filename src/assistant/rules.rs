//! The rules engine: a deterministic, local backend. A question is reduced to lower-case
//! words, its seats (`S2`, `s2`, `seat 2`, `row A seat 4`), booking ids (`bk-3`), event
//! (any event's name in it, else the one in use) and a number; then the first [`Intent`]
//! whose words it has decides which tools to call and how to say the result.
//!
//! Privacy is the cluster's: the seat map names a holder only to the holder and to admins,
//! and the engine reads the map as the asker, so it cannot tell what it was never told.

use super::tools::{self, SeatsView};
use super::{and_list, Action, Answer, Proposal};
use crate::client::Client;
use crate::domain::validate;

/// What a question asks, in the order they are tried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Intent {
    Help(Topic),
    Cluster,
    MyBookings,
    Cancel,
    /// "How long is my hold?"
    MyHolds,
    /// "Confirm my hold", "confirm hd-3".
    ConfirmHold,
    /// "Hold S2 for me".
    Hold,
    Who,
    Together(usize),
    HowMany,
    Book,
    FreeSeats,
    SeatStatus,
    Unknown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topic {
    Reserve,
    Cancel,
    Login,
}

/// A question taken apart.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Parsed {
    pub words: Vec<String>,
    /// Seat ids written out (`S2`), upper-cased.
    pub seats: Vec<String>,
    /// Seat numbers without a row (`seat 2`), and the row if one was named (`row A`).
    pub numbers: Vec<u32>,
    pub row: Option<String>,
    pub bookings: Vec<String>,
    /// Hold ids written out (`hd-3`).
    pub holds: Vec<String>,
    /// A price ceiling in whole units (`under 80 euros`, `below 50`, `at most 30`).
    pub max_price: Option<u64>,
    /// A count (`3 seats`, `three`, `a pair`).
    pub count: Option<usize>,
    pub event: Option<String>,
}

const NUMBER_WORDS: [&str; 10] = [
    "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
];
/// The longest run of seats `together` looks for.
const TOGETHER_MAX: usize = 10;
/// Free seats listed by name before "and N more".
const LISTED_MAX: usize = 30;

/// What the engine can answer, for a question it cannot.
pub const CAN_ANSWER: &str = "I can answer: is seat S2 available? · who reserved S2? · which \
seats are free? · how many seats are left? · find me 2 seats together · what did I reserve? · \
reserve S2 · hold S2 · how long is my hold? · confirm my hold · find me 2 seats together under 80 euros · cancel S2 · which node is the leader? · is the cluster healthy? · how do I reserve, cancel \
or log in? Name an event to ask about it instead of the one in use.";

/// Splits a question into words: lower case, punctuation gone (an apostrophe joins: "what's"
/// is "whats"), booking ids and `#2` kept whole.
pub fn words(question: &str) -> Vec<String> {
    let cleaned: String = question
        .chars()
        .filter(|c| *c != '\'' && *c != '’')
        .map(|c| match c {
            c if c.is_alphanumeric() || c == '-' || c == '#' => c.to_ascii_lowercase(),
            _ => ' ',
        })
        .collect();
    cleaned
        .split_whitespace()
        .map(|w| w.trim_matches('-').to_string())
        .filter(|w| !w.is_empty())
        .collect()
}

fn small_number(word: &str) -> Option<usize> {
    if let Ok(n) = word.trim_start_matches('#').parse::<usize>() {
        return Some(n);
    }
    NUMBER_WORDS.iter().position(|w| *w == word).map(|i| i + 1)
}

/// Takes a question apart, knowing the events' names.
pub fn parse(question: &str, events: &[String]) -> Parsed {
    let words = words(question);
    let mut parsed = Parsed::default();
    let mut i = 0;
    while i < words.len() {
        let w = words[i].as_str();
        let next = words.get(i + 1).map(String::as_str);
        if let Some(event) = events.iter().find(|e| e.eq_ignore_ascii_case(w)) {
            parsed.event.get_or_insert_with(|| event.clone());
        } else if validate::is_booking_id(w) {
            parsed.bookings.push(w.to_string());
        } else if w.starts_with("hd-") && validate::parse_hold_id(w).is_some() {
            parsed.holds.push(w.to_string());
        } else if let Some(price) = price_after(&words, i) {
            parsed.max_price = Some(price);
            i += price_words(&words, i);
            continue;
        } else if w == "row"
            && next.is_some_and(|r| validate::is_row_label(&r.to_ascii_uppercase()))
        {
            parsed.row = next.map(str::to_ascii_uppercase);
            i += 1;
        } else if matches!(w, "seat" | "seats" | "number" | "no" | "nr") {
            // "seat 2", "seats 2 and 3", "seat #4", "seat number 5"
            let mut j = i + 1;
            while let Some(word) = words.get(j) {
                match word.as_str() {
                    "and" | "number" | "no" | "nr" => {}
                    n if n.trim_start_matches('#').parse::<u32>().is_ok() => {
                        parsed
                            .numbers
                            .extend(n.trim_start_matches('#').parse::<u32>().ok());
                    }
                    _ => break,
                }
                j += 1;
            }
            i = j.max(i + 1);
            continue;
        } else if validate::is_seat_id(w) {
            parsed.seats.push(w.to_ascii_uppercase());
        } else if let Some(n) = small_number(w).filter(|_| parsed.count.is_none()) {
            parsed.count = Some(n);
        } else if matches!(w, "pair" | "couple" | "both") {
            parsed.count.get_or_insert(2);
        }
        i += 1;
    }
    parsed.words = words;
    parsed
}

/// Which intent a question has: the first that matches, in the order of [`Intent`].
pub fn intent(p: &Parsed) -> Intent {
    let q = Wording::new(p);
    let seat_named = !p.seats.is_empty() || !p.numbers.is_empty();
    if let Some(topic) = help_topic(&q) {
        return Intent::Help(topic);
    }
    if asks_about_cluster(&q) {
        return Intent::Cluster;
    }
    if asks_about_holds(&q) {
        return Intent::MyHolds;
    }
    if q.has("confirm") && (!p.holds.is_empty() || q.has("hold")) {
        return Intent::ConfirmHold;
    }
    if q.has("hold") && seat_named && !q.phrase("held by") {
        return Intent::Hold;
    }
    let cancels = asks_to_cancel(&q);
    if !cancels && asks_about_own_bookings(&q, p, seat_named) {
        return Intent::MyBookings;
    }
    if cancels {
        return Intent::Cancel;
    }
    if asks_who(&q) {
        return Intent::Who;
    }
    if asks_for_seats_together(&q) {
        return Intent::Together(p.count.unwrap_or(2));
    }
    if q.has("how") && q.has("many") {
        return Intent::HowMany;
    }
    let books = asks_to_book(&q);
    if books && seat_named {
        return Intent::Book;
    }
    if seat_named {
        return Intent::SeatStatus;
    }
    if asks_for_free_seats(&q) {
        return Intent::FreeSeats;
    }
    if books {
        return Intent::Book;
    }
    Intent::Unknown
}

/// The words of a question, to look for words and phrases in.
struct Wording<'a> {
    words: &'a [String],
    /// The words joined by spaces, with a space before and after.
    text: String,
}

impl<'a> Wording<'a> {
    fn new(p: &'a Parsed) -> Wording<'a> {
        Wording {
            words: &p.words,
            text: format!(" {} ", p.words.join(" ")),
        }
    }

    fn has(&self, w: &str) -> bool {
        self.words.iter().any(|x| x == w)
    }

    fn any(&self, ws: &[&str]) -> bool {
        ws.iter().any(|w| self.has(w))
    }

    /// Whether the words run `ph` (whole words, in order).
    fn phrase(&self, ph: &str) -> bool {
        self.text.contains(&format!(" {ph} "))
    }

    fn any_phrase(&self, phs: &[&str]) -> bool {
        phs.iter().any(|ph| self.phrase(ph))
    }
}

/// What a question that asks how to do something asks about, if it does.
fn help_topic(q: &Wording) -> Option<Topic> {
    let asks_how = (q.has("how") && !q.has("many") && !q.has("much"))
        || q.has("help")
        || q.phrase("what command");
    if !asks_how {
        return None;
    }
    if q.any(&["cancel", "unbook", "release"]) {
        return Some(Topic::Cancel);
    }
    if q.any(&["book", "reserve", "buy"]) {
        return Some(Topic::Reserve);
    }
    if q.any(&["login", "logon", "signin"]) || q.any_phrase(&["log in", "sign in", "log on"]) {
        return Some(Topic::Login);
    }
    None
}

/// "How long is my hold?", "when does my hold expire", "my holds", "time left".
fn asks_about_holds(q: &Wording) -> bool {
    let about_hold = q.any(&["hold", "holds"]);
    about_hold
        && (q.any(&["my", "long", "expire", "expires", "left", "remaining"])
            || q.phrase("time left"))
        && !q.has("confirm")
}

/// A price ceiling at word `i`: `under 80`, `below 80`, `less than 80`, `cheaper than 80`,
/// `at most 80`, `max 80`, `up to 80` (a currency word after it is left for the caller).
fn price_after(words: &[String], i: usize) -> Option<u64> {
    let skip = price_words(words, i);
    if skip == 0 {
        return None;
    }
    words.get(i + skip - 1)?.parse().ok()
}

/// How many words a price ceiling at `i` spans (0: none there).
fn price_words(words: &[String], i: usize) -> usize {
    let at = |k: usize| words.get(i + k).map(String::as_str);
    let number = |k: usize| at(k).is_some_and(|w| w.parse::<u64>().is_ok());
    match (at(0), at(1)) {
        (Some("under" | "below" | "max" | "maximum"), _) if number(1) => 2,
        (Some("less" | "cheaper"), Some("than")) if number(2) => 3,
        (Some("at" | "up"), Some("most" | "to")) if number(2) => 3,
        _ => 0,
    }
}

fn asks_about_cluster(q: &Wording) -> bool {
    q.any(&[
        "leader", "leading", "leads", "healthy", "health", "cluster", "node", "nodes", "raft",
        "term",
    ])
}

/// "What did I book?", "my seats": about the asker's own bookings, none of them named.
fn asks_about_own_bookings(q: &Wording, p: &Parsed, seat_named: bool) -> bool {
    let mine = q.any(&["my", "mine"])
        && q.any(&[
            "booking",
            "bookings",
            "seats",
            "reservation",
            "reservations",
            "tickets",
            "seat",
        ])
        && !seat_named
        && p.bookings.is_empty();
    q.any_phrase(&[
        "did i book",
        "have i booked",
        "i booked",
        "did i reserve",
        "have i reserved",
        "do i have",
        "do i hold",
    ]) || mine
}

fn asks_to_cancel(q: &Wording) -> bool {
    q.any(&["cancel", "unbook", "release", "refund"]) || q.phrase("give back")
}

fn asks_who(q: &Wording) -> bool {
    q.any(&["who", "whose", "whom"]) || q.any_phrase(&["held by", "reserved by", "booked by"])
}

fn asks_for_seats_together(q: &Wording) -> bool {
    q.any(&["together", "adjacent", "consecutive"])
        || q.any_phrase(&["next to each other", "side by side", "in a row"])
}

fn asks_to_book(q: &Wording) -> bool {
    q.any(&["book", "reserve", "grab", "buy", "want"])
        || q.any_phrase(&["id like", "i would like", "get me", "can i have", "give me"])
}

fn asks_for_free_seats(q: &Wording) -> bool {
    q.any(&[
        "free",
        "available",
        "open",
        "empty",
        "vacant",
        "left",
        "remaining",
        "unsold",
        "seats",
    ])
}

/// Answers a question as `client`'s user, `event_in_use` unless it names another.
pub async fn ask(client: &Client, event_in_use: &str, question: &str) -> Answer {
    let mut turn = Turn {
        client,
        answer: Answer {
            answer: String::new(),
            backend: "rules",
            tools: Vec::new(),
            applied_index: None,
            proposal: None,
            fallback: None,
            streamed: false,
        },
    };
    let result = turn.run(event_in_use, question).await;
    turn.answer.answer = match result {
        Ok(text) => text,
        Err(problem) => problem,
    };
    turn.answer
}

/// One question's work: the tools it called and the answer so far.
struct Turn<'c> {
    client: &'c Client,
    answer: Answer,
}

impl Turn<'_> {
    async fn run(&mut self, event_in_use: &str, question: &str) -> Result<String, String> {
        self.answer.tools.push(tools::LIST_EVENTS);
        let events: Vec<String> = tools::list_events(self.client)
            .await
            .map_err(|e| format!("I cannot reach the cluster right now: {e}"))?
            .into_iter()
            .map(|e| e.name)
            .collect();
        let parsed = parse(question, &events);
        let event = parsed
            .event
            .clone()
            .unwrap_or_else(|| event_in_use.to_string());
        match intent(&parsed) {
            Intent::Help(topic) => {
                self.answer.tools.push(tools::HELP);
                Ok(help(topic).to_string())
            }
            Intent::Cluster => self.cluster().await,
            Intent::MyBookings => self.my_bookings().await,
            Intent::Cancel => self.cancel(&parsed, &event).await,
            Intent::MyHolds => self.my_holds().await,
            Intent::ConfirmHold => self.confirm_hold(&parsed).await,
            Intent::Hold => self.hold(&parsed, &event).await,
            Intent::Who => self.who(&parsed, &event).await,
            Intent::Together(n) => self.together(n, parsed.max_price, &event).await,
            Intent::HowMany => {
                let map = self.seats(&event).await?;
                Ok(format!(
                    "{} of {} seats are free in {} (as of index {}).",
                    map.free,
                    map.free + map.taken,
                    map.event,
                    map.applied_index
                ))
            }
            Intent::Book => self.book(&parsed, &event).await,
            Intent::FreeSeats => {
                let map = self.seats(&event).await?;
                Ok(free_list(&map))
            }
            Intent::SeatStatus => {
                let map = self.seats(&event).await?;
                let ids = resolve(&parsed, &map)?;
                let lines: Vec<String> = ids.iter().map(|id| seat_status(&map, id)).collect();
                Ok(format!(
                    "{} (as of index {}).",
                    lines.join("; "),
                    map.applied_index
                ))
            }
            Intent::Unknown => Ok(format!("I did not understand that. {CAN_ANSWER}")),
        }
    }

    async fn seats(&mut self, event: &str) -> Result<SeatsView, String> {
        self.answer.tools.push(tools::SEATS);
        let map = tools::seats(self.client, event).await?;
        self.answer.applied_index = Some(map.applied_index);
        Ok(map)
    }

    fn logged_in(&self, to: &str) -> Result<(), String> {
        match self.client.user() {
            Some(_) => Ok(()),
            None => Err(format!("Log in first (`login USER`) so that I can {to}.")),
        }
    }

    async fn cluster(&mut self) -> Result<String, String> {
        self.answer.tools.push(tools::CLUSTER_STATUS);
        let status = tools::cluster_status(self.client).await?;
        let up = status.nodes.iter().filter(|n| n.reachable).count();
        let all = status.nodes.len();
        let leader = match status.leader {
            0 => "There is no leader right now (an election is under way)".to_string(),
            id => format!("node{id} is the leader (term {})", status.term),
        };
        let health = match (status.leader != 0, up == all, up * 2 > all) {
            (true, true, _) => "the cluster is healthy",
            (true, false, true) => "the cluster serves, with a node down",
            _ => "the cluster cannot reserve or cancel until a majority is back",
        };
        Ok(format!("{leader}; {up} of {all} nodes answer: {health}."))
    }

    async fn my_bookings(&mut self) -> Result<String, String> {
        self.logged_in("see your bookings")?;
        self.answer.tools.push(tools::MY_BOOKINGS);
        let bookings = tools::my_bookings(self.client).await?;
        if bookings.is_empty() {
            return Ok("You have no bookings.".into());
        }
        let listed: Vec<String> = bookings
            .iter()
            .map(|b| format!("{} ({}: {})", b.id, b.event, b.seats.join(", ")))
            .collect();
        let noun = if bookings.len() == 1 {
            "booking"
        } else {
            "bookings"
        };
        Ok(format!(
            "You have {} {noun}: {}.",
            bookings.len(),
            listed.join(", ")
        ))
    }

    async fn who(&mut self, parsed: &Parsed, event: &str) -> Result<String, String> {
        let map = self.seats(event).await?;
        let ids = resolve(parsed, &map)?;
        let lines: Vec<String> = ids
            .iter()
            .map(|id| match map.seat(id) {
                None => format!("{} has no seat {id}.", map.event),
                Some(s) => match (s.status, &s.holder) {
                    ("free", _) => format!("Nobody: {} in {} is free.", s.id, map.event),
                    ("mine", _) => format!("You do: {} in {} is yours.", s.id, map.event),
                    (_, Some(holder)) => format!(
                        "{} in {} is held by {holder} ({}).",
                        s.id,
                        map.event,
                        s.booking_id.as_deref().unwrap_or("booking unknown")
                    ),
                    _ => format!(
                        "{} in {} is taken; who holds a seat is told only to them and to admins.",
                        s.id, map.event
                    ),
                },
            })
            .collect();
        Ok(lines.join(" "))
    }

    async fn together(
        &mut self,
        n: usize,
        max_price: Option<u64>,
        event: &str,
    ) -> Result<String, String> {
        if !(1..=TOGETHER_MAX).contains(&n) {
            return Ok(format!(
                "I can look for 1 to {TOGETHER_MAX} seats together, not {n}."
            ));
        }
        let map = self.seats(event).await?;
        let ceiling = max_price.map(|p| p.saturating_mul(100));
        let under = match (max_price, map.currency.as_str()) {
            (Some(p), "") => format!(" at most {p} each"),
            (Some(p), currency) => format!(" at most {p}.00 {currency} each"),
            (None, _) => String::new(),
        };
        let Some(found) = map.adjacent_free_within(n, ceiling) else {
            return Ok(format!(
                "There are no {n} adjacent free seats{under} in one row of {} (as of index {}).",
                map.event, map.applied_index
            ));
        };
        let total: u64 = found
            .iter()
            .filter_map(|id| map.seat(id))
            .map(|s| s.price_minor)
            .sum();
        let price = match crate::json::price_text(total, &map.currency) {
            p if p.is_empty() => String::new(),
            p => format!(", {p} together"),
        };
        let text = format!(
            "{} are free together{under} in {}{price} (as of index {}).",
            and_list(&found),
            map.event,
            map.applied_index
        );
        if self.client.user().is_none() {
            return Ok(format!("{text} Log in to hold or reserve them."));
        }
        // With a price in the question, the person is shopping: hold first, buy on confirm.
        let action = match max_price {
            Some(_) => Action::Hold {
                event: map.event.clone(),
                seats: found,
            },
            None => Action::Reserve {
                event: map.event.clone(),
                seats: found,
            },
        };
        self.propose(action);
        Ok(text)
    }

    async fn my_holds(&mut self) -> Result<String, String> {
        self.logged_in("see your holds")?;
        self.answer.tools.push(tools::MY_HOLDS);
        let (holds, now_ms) = tools::my_holds(self.client).await?;
        if holds.is_empty() {
            return Ok("You hold no seats right now.".into());
        }
        let listed: Vec<String> = holds
            .iter()
            .map(|h| {
                let left_ms = h.expires_at_ms.saturating_sub(now_ms);
                format!(
                    "{} ({}: {}) has {}:{:02} left, until {}",
                    h.id,
                    h.event,
                    h.seats.join(", "),
                    left_ms / 60_000,
                    (left_ms / 1000) % 60,
                    crate::domain::clock_text(h.expires_at_ms)
                )
            })
            .collect();
        Ok(format!(
            "{}. Confirm a hold to buy its seats (`confirm hd-N`).",
            listed.join("; ")
        ))
    }

    async fn confirm_hold(&mut self, parsed: &Parsed) -> Result<String, String> {
        self.logged_in("confirm for you")?;
        self.answer.tools.push(tools::MY_HOLDS);
        let (holds, _) = tools::my_holds(self.client).await?;
        let chosen = match parsed.holds.first() {
            Some(id) => holds.iter().find(|h| &h.id == id),
            None if holds.len() == 1 => holds.first(),
            None if holds.is_empty() => return Ok("You hold no seats to confirm.".into()),
            None => {
                let ids: Vec<String> = holds.iter().map(|h| h.id.clone()).collect();
                return Ok(format!("Which hold? You have {}.", and_list(&ids)));
            }
        };
        let Some(hold) = chosen else {
            return Ok(format!(
                "You have no live hold {}: it may have expired.",
                parsed.holds.first().map_or("", String::as_str)
            ));
        };
        let text = format!(
            "{} holds {} in {}.",
            hold.id,
            hold.seats.join(", "),
            hold.event
        );
        self.propose(Action::ConfirmHold {
            hold: hold.id.clone(),
        });
        Ok(text)
    }

    async fn hold(&mut self, parsed: &Parsed, event: &str) -> Result<String, String> {
        self.logged_in("hold seats for you")?;
        let map = self.seats(event).await?;
        let ids = resolve(parsed, &map)?;
        let text = match all_free(&map, &ids, "held") {
            Ok(text) => text,
            Err(not_free) => return Ok(not_free),
        };
        self.propose(Action::Hold {
            event: map.event.clone(),
            seats: ids,
        });
        Ok(text)
    }

    async fn book(&mut self, parsed: &Parsed, event: &str) -> Result<String, String> {
        self.logged_in("book for you")?;
        let map = self.seats(event).await?;
        if parsed.seats.is_empty() && parsed.numbers.is_empty() {
            return Ok(format!(
                "Which seat? Say, for example, \"reserve S2\". {}",
                free_list(&map)
            ));
        }
        let ids = resolve(parsed, &map)?;
        let text = match all_free(&map, &ids, "booked") {
            Ok(text) => text,
            Err(not_free) => return Ok(not_free),
        };
        self.propose(Action::Reserve {
            event: map.event.clone(),
            seats: ids,
        });
        Ok(text)
    }

    async fn cancel(&mut self, parsed: &Parsed, event: &str) -> Result<String, String> {
        self.logged_in("cancel for you")?;
        if let Some(booking) = parsed.bookings.first() {
            self.answer.tools.push(tools::MY_BOOKINGS);
            let bookings = tools::my_bookings(self.client).await?;
            let Some(found) = bookings.iter().find(|b| &b.id == booking) else {
                return Ok(format!("You have no booking {booking}."));
            };
            let text = format!(
                "{} holds {} in {}.",
                found.id,
                found.seats.join(", "),
                found.event
            );
            self.propose(Action::CancelBooking {
                booking: found.id.clone(),
            });
            return Ok(text);
        }
        if parsed.seats.is_empty() && parsed.numbers.is_empty() {
            let listing = self.my_bookings().await?;
            return Ok(format!(
                "What should I cancel? Name seats or a booking. {listing}"
            ));
        }
        let map = self.seats(event).await?;
        let ids = resolve(parsed, &map)?;
        let not_mine: Vec<String> = ids
            .iter()
            .filter(|id| map.seat(id).is_none_or(|s| s.status != "mine"))
            .map(|id| match map.seat(id) {
                None => format!("{} has no seat {id}.", map.event),
                Some(s) if s.status == "free" => {
                    format!("{} in {} is not reserved.", s.id, map.event)
                }
                Some(s) => format!("{} in {} is not yours to cancel.", s.id, map.event),
            })
            .collect();
        if !not_mine.is_empty() {
            return Ok(format!("{} Nothing was cancelled.", not_mine.join(" ")));
        }
        let text = format!(
            "{} {} yours in {}.",
            and_list(&ids),
            if ids.len() == 1 { "is" } else { "are" },
            map.event
        );
        self.propose(Action::CancelSeats {
            event: map.event.clone(),
            seats: ids,
        });
        Ok(text)
    }

    fn propose(&mut self, action: Action) {
        let id = crate::client::new_request_id();
        self.answer.proposal = Some(Proposal::new(action, id));
    }
}

/// The seat ids a question names in `map`: written out, or numbers in the named row, or in
/// the event's only row.
fn resolve(parsed: &Parsed, map: &SeatsView) -> Result<Vec<String>, String> {
    let mut ids = parsed.seats.clone();
    if !parsed.numbers.is_empty() {
        let rows = map.rows();
        let row = match (&parsed.row, rows.as_slice()) {
            (Some(row), _) => row.clone(),
            (None, [only]) => only.to_string(),
            (None, rows) => {
                return Err(format!(
                    "Which row? {} has rows {}: say, for example, {}{}.",
                    map.event,
                    rows.join(", "),
                    rows.first().copied().unwrap_or("A"),
                    parsed.numbers[0]
                ))
            }
        };
        ids.extend(parsed.numbers.iter().map(|n| format!("{row}{n}")));
    }
    let mut unique: Vec<String> = Vec::new();
    for id in ids {
        if !unique.contains(&id) {
            unique.push(id);
        }
    }
    if unique.is_empty() {
        return Err("Which seat? Say, for example, S2 or seat 2.".into());
    }
    Ok(unique)
}

/// "S2 and S3 are free in demo (as of index N).", or, when some are not, the answer saying
/// which and that nothing was `done` (the proposal is then not made).
fn all_free(map: &SeatsView, ids: &[String], done: &str) -> Result<String, String> {
    let unavailable: Vec<String> = ids
        .iter()
        .filter(|id| map.seat(id).is_none_or(|s| s.status != "free"))
        .map(|id| seat_status(map, id))
        .collect();
    if !unavailable.is_empty() {
        return Err(format!("{}: nothing was {done}.", unavailable.join("; ")));
    }
    Ok(format!(
        "{} {} free in {} (as of index {}).",
        and_list(ids),
        if ids.len() == 1 { "is" } else { "are" },
        map.event,
        map.applied_index
    ))
}

/// One seat's state, as a clause without a full stop.
fn seat_status(map: &SeatsView, id: &str) -> String {
    match map.seat(id) {
        None => format!("{} has no seat {id}", map.event),
        Some(s) => match s.status {
            "free" => format!("{} in {} is available", s.id, map.event),
            "mine" => format!(
                "{} in {} is yours ({})",
                s.id,
                map.event,
                s.booking_id.as_deref().unwrap_or("booked")
            ),
            _ => format!("{} in {} is taken", s.id, map.event),
        },
    }
}

fn free_list(map: &SeatsView) -> String {
    let free: Vec<String> = map
        .seats
        .iter()
        .filter(|s| s.status == "free")
        .map(|s| s.id.clone())
        .collect();
    if free.is_empty() {
        return format!(
            "{} is sold out (as of index {}).",
            map.event, map.applied_index
        );
    }
    let shown = free.len().min(LISTED_MAX);
    let more = match free.len() - shown {
        0 => String::new(),
        n => format!(" and {n} more"),
    };
    format!(
        "{} of {} seats are free in {}: {}{more} (as of index {}).",
        free.len(),
        map.seats.len(),
        map.event,
        free[..shown].join(", "),
        map.applied_index
    )
}

pub fn help(topic: Topic) -> &'static str {
    match topic {
        Topic::Reserve => {
            "To reserve, type `reserve S2` (several at once: `reserve S2 S3`, all or \
            none), or ask me \"reserve S2\" and confirm. `seats` shows what is free."
        }
        Topic::Cancel => {
            "To cancel, type `cancel S2` or `cancel bk-N` for a whole booking; it asks \
            before it cancels. `bookings` lists yours. Or ask me \"cancel S2\" and confirm."
        }
        Topic::Login => {
            "Type `login USER`: the password is asked and never shown, and the login \
            works on every node. New here? `user add NAME` registers you."
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn intent_of(q: &str) -> Intent {
        intent(&parse(q, &["demo".into(), "gala".into()]))
    }

    #[test]
    fn holds_prices_and_confirms_are_understood() {
        let p = parse("find me 2 seats together under 80 euros", &[]);
        assert_eq!((p.count, p.max_price), (Some(2), Some(80)));
        assert_eq!(intent(&p), Intent::Together(2));
        let p = parse("four seats together less than 45", &[]);
        assert_eq!((p.count, p.max_price), (Some(4), Some(45)));
        assert_eq!(parse("at most 30 each", &[]).max_price, Some(30));
        assert_eq!(parse("seats under the stage", &[]).max_price, None);
        assert_eq!(intent_of("how long is my hold?"), Intent::MyHolds);
        assert_eq!(intent_of("when does my hold expire"), Intent::MyHolds);
        assert_eq!(intent_of("confirm my hold"), Intent::ConfirmHold);
        assert_eq!(intent_of("please confirm hd-3"), Intent::ConfirmHold);
        assert_eq!(parse("confirm hd-3", &[]).holds, ["hd-3"]);
        assert_eq!(intent_of("hold S2 for me"), Intent::Hold);
        assert_eq!(intent_of("who is S2 held by"), Intent::Who);
    }

    #[test]
    fn seats_numbers_events_and_bookings_are_found_in_any_case() {
        let p = parse(
            "Is seat s2 free in GALA, or row b seat #4? bk-12",
            &["gala".into()],
        );
        assert_eq!(p.seats, ["S2"]);
        assert_eq!(p.numbers, [4]);
        assert_eq!(p.row.as_deref(), Some("B"));
        assert_eq!(p.event.as_deref(), Some("gala"));
        assert_eq!(p.bookings, ["bk-12"]);
        assert_eq!(parse("find me three seats", &[]).count, Some(3));
        assert_eq!(parse("seats 2 and 3", &[]).numbers, [2, 3]);
    }

    #[test]
    fn intents_are_told_apart() {
        assert_eq!(intent_of("Is seat S2 available?"), Intent::SeatStatus);
        assert_eq!(intent_of("what did I book"), Intent::MyBookings);
        assert_eq!(intent_of("how do I book?"), Intent::Help(Topic::Reserve));
        assert_eq!(intent_of("how many seats are left"), Intent::HowMany);
        assert_eq!(intent_of("book two seats together"), Intent::Together(2));
        assert_eq!(intent_of("who reserved S2"), Intent::Who);
        assert_eq!(intent_of("cancel my booking bk-3"), Intent::Cancel);
        assert_eq!(intent_of("what's the weather"), Intent::Unknown);
    }
}
