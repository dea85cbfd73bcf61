//! `State::apply` is total: any sequence of commands, plausible or hostile, applied to a
//! reachable state neither panics nor breaks an invariant, and a refusal changes nothing but
//! the table of remembered outcomes (and a malformed command not even that).
//!
//! The case count is `PROPTEST_CASES` when set, else [`CASES_DEFAULT`]; 100,000 cases of up to
//! [`STEPS_MAX`] commands take well under a minute in a release build on two cores.

use std::cell::RefCell;
use std::collections::BTreeMap;

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::{Config, TestRunner};

use super::{
    validate, BestAsk, CancelTarget, CategorySpec, Command, EventSpec, HoldTarget, Outcome,
    PasswordHash, Rejection, Role, SeatMap, State,
};
use crate::domain::FirstAdmin;
use crate::limits;

const CASES_DEFAULT: u32 = 100_000;
const STEPS_MAX: usize = 30;

/// Registered in the base state: root (an admin), ana and bo; cy and dee are free names.
const USERS: &[&str] = &["root", "ana", "bo", "cy", "dee"];
/// In the base state: demo, show and gig; new and fresh are free names.
const EVENTS: &[&str] = &["demo", "show", "gig", "new", "fresh"];

/// A hash as PBKDF2 would store it, made up: nothing here ever checks a password.
const HASH: PasswordHash = PasswordHash {
    salt: [7; 16],
    iterations: limits::PBKDF2_ITERATIONS_MIN,
    hash: [9; 32],
};

/// Text no rule accepts, or that names nobody.
fn hostile_text() -> BoxedStrategy<String> {
    prop_oneof![
        select(vec![
            String::new(),
            "ghost".into(),
            "a b".into(),
            "root\0".into(),
            "Root".into(),
            "x".repeat(limits::NAME_LEN_MAX + 1),
            "é".repeat(limits::NAME_LEN_MAX / 2 + 1),
            "z".repeat(5_000),
        ]),
        ".{0,12}",
    ]
    .boxed()
}

/// Each field of a command is hostile about once in this many: with five or so fields, most
/// commands are well-formed and reach the state, and about one in ten is malformed.
const PLAUSIBLE: u32 = 30;

/// Mostly a registered user, so that commands get past the actor check.
fn user() -> BoxedStrategy<String> {
    prop_oneof![
        PLAUSIBLE => select(&USERS[..3]).prop_map(String::from),
        PLAUSIBLE / 5 => select(USERS).prop_map(String::from),
        1 => hostile_text(),
    ]
    .boxed()
}

/// Mostly a name not yet taken, for a new user.
fn new_user() -> BoxedStrategy<String> {
    prop_oneof![
        PLAUSIBLE => select(&["cy", "dee", "eve", "fay", "gus"][..]).prop_map(String::from),
        PLAUSIBLE / 3 => user(),
    ]
    .boxed()
}

/// Mostly the base state's admin, for commands only an admin may give.
fn admin() -> BoxedStrategy<String> {
    prop_oneof![PLAUSIBLE => Just("root".to_string()), PLAUSIBLE / 3 => user()].boxed()
}

fn event() -> BoxedStrategy<String> {
    prop_oneof![
        PLAUSIBLE => select(EVENTS).prop_map(String::from),
        1 => hostile_text(),
    ]
    .boxed()
}

/// Mostly a few ids shared by all, so that retries and collisions happen.
fn request_id() -> BoxedStrategy<String> {
    prop_oneof![
        PLAUSIBLE => (0u8..40).prop_map(|n| format!("r{n}")),
        1 => select(vec![
            String::new(),
            "r 1".into(),
            "r\u{7f}".into(),
            "ré".into(),
            "r".repeat(limits::REQUEST_ID_LEN_MAX + 1),
        ]),
    ]
    .boxed()
}

/// Mostly within a few holds' lengths of each other, so that holds expire between commands
/// as often as not; sometimes far ahead, or at the end of time.
fn now_ms() -> BoxedStrategy<u64> {
    prop_oneof![
        PLAUSIBLE => 0u64..12_000,
        PLAUSIBLE / 10 => 0u64..1 << 45,
        1 => Just(u64::MAX),
        1 => any::<u64>(),
    ]
    .boxed()
}

fn seat() -> BoxedStrategy<String> {
    prop_oneof![
        PLAUSIBLE => (select(&["A", "B", "C", "S", "a", "s"][..]), 1u32..=5)
            .prop_map(|(row, n)| format!("{row}{n}")),
        PLAUSIBLE / 5 => (select(&["A", "B", "C", "D", "S"][..]), 0u32..=12)
            .prop_map(|(row, n)| format!("{row}{n}")),
        1 => select(&[
            "",
            "A0",
            "A00",
            "A+1",
            "A-1",
            "A2147483648",
            "A4294967296",
            "S99999999999999999999",
            "1A",
            "AB",
            "S1x",
            "ZZZZZ1",
            "\u{ff21}1",
            "#3",
        ][..])
        .prop_map(String::from),
        1 => ".{0,20}",
    ]
    .boxed()
}

fn seats() -> BoxedStrategy<Vec<String>> {
    prop_oneof![
        PLAUSIBLE => vec(seat(), 1..=3),
        1 => vec(seat(), 0..=limits::SEATS_PER_REQUEST_MAX + 2),
    ]
    .boxed()
}

/// Distinct seats of `rows` (labels) by `per_row`, the layout of a known or likely event.
fn seats_of(rows: &[&str], per_row: u32) -> BoxedStrategy<Vec<String>> {
    let ids: Vec<String> = rows
        .iter()
        .flat_map(|row| (1..=per_row).map(move |n| format!("{row}{n}")))
        .collect();
    proptest::sample::subsequence(ids, 1..=3)
        .prop_shuffle()
        .boxed()
}

/// An event and seats in it: mostly seats it has (the base state's events, and the small
/// layouts `spec` makes), sometimes anything at all.
fn event_and_seats() -> BoxedStrategy<(String, Vec<String>)> {
    let named = |event: &'static str, seats| (Just(event.to_string()), seats);
    prop_oneof![
        PLAUSIBLE => named("demo", seats_of(&["S"], 10)),
        PLAUSIBLE => named("show", seats_of(&["A", "B"], 5)),
        PLAUSIBLE => named("gig", seats_of(&["A", "B", "C"], 4)),
        PLAUSIBLE => (select(&EVENTS[3..]).prop_map(String::from), seats_of(&["A", "B"], 3)),
        PLAUSIBLE => (event(), seats()),
    ]
    .boxed()
}

fn booking_id() -> BoxedStrategy<String> {
    prop_oneof![
        PLAUSIBLE => (0u64..=8).prop_map(|n| format!("bk-{n}")),
        1 => select(vec![
            String::new(),
            "bk-".into(),
            "bk--1".into(),
            "bk-+1".into(),
            "bk-01".into(),
            format!("bk-{}", u64::MAX),
            "bk-18446744073709551616".into(),
            format!("bk-{}", "9".repeat(40)),
            "booking".into(),
        ]),
    ]
    .boxed()
}

fn row_labels() -> BoxedStrategy<Vec<String>> {
    let labels = |v: &[&str]| v.iter().map(|l| l.to_string()).collect::<Vec<_>>();
    prop_oneof![
        PLAUSIBLE => (1u32..=4).prop_map(SeatMap::default_row_labels),
        // Duplicates are likely.
        PLAUSIBLE / 10 => vec(select(&["A", "B", "C", "AA", "ZZZZ"][..]).prop_map(String::from), 1..=4),
        1 => select(vec![
            Vec::new(),
            labels(&[""]),
            labels(&["a"]),
            labels(&["A1"]),
            labels(&["ABCDE"]),
            labels(&["A", "b"]),
            labels(&["É"]),
            SeatMap::default_row_labels(limits::ROWS_MAX),
            SeatMap::default_row_labels(limits::ROWS_MAX + 1),
            SeatMap::default_row_labels(10_000),
        ]),
    ]
    .boxed()
}

fn spec() -> BoxedStrategy<EventSpec> {
    let seats_per_row = prop_oneof![
        PLAUSIBLE => 1u32..=6,
        1 => select(vec![0, limits::SEATS_PER_ROW_MAX, limits::SEATS_PER_ROW_MAX + 1, 1 << 31, u32::MAX]),
        1 => any::<u32>(),
    ];
    let max_seats_per_user = prop_oneof![
        PLAUSIBLE => 1u32..=5,
        1 => select(vec![0, u32::MAX]),
        1 => any::<u32>(),
    ];
    (event(), row_labels(), seats_per_row, max_seats_per_user)
        .prop_map(
            |(name, row_labels, seats_per_row, max_seats_per_user)| EventSpec {
                name,
                row_labels,
                seats_per_row,
                max_seats_per_user,
                categories: Vec::new(),
                currency: String::new(),
            },
        )
        .boxed()
}

fn password() -> BoxedStrategy<PasswordHash> {
    prop_oneof![
        PLAUSIBLE => Just(HASH),
        1 => select(vec![0, 1, limits::PBKDF2_ITERATIONS_MIN - 1, u32::MAX])
            .prop_map(|iterations| PasswordHash { iterations, ..HASH }),
    ]
    .boxed()
}

/// Any command, weighted towards bookings: those walk the most rules.
fn command() -> BoxedStrategy<Command> {
    prop_oneof![
        1 => bootstrap(),
        1 => setup_admin(),
        1 => revoke_tokens(),
        1 => set_password(),
        1 => set_disabled(),
        3 => add_user(),
        3 => create_event(),
        10 => reserve(),
        6 => cancel(),
        8 => hold(),
        4 => hold_change(),
        2 => check_in(),
        1 => now_ms().prop_map(|now_ms| Command::Sweep { now_ms }),
    ]
    .boxed()
}

/// A hold's length: mostly a few seconds, so that holds run out; sometimes out of bounds.
fn hold_ms() -> BoxedStrategy<u64> {
    prop_oneof![
        PLAUSIBLE => limits::HOLD_MS_MIN..6_000,
        PLAUSIBLE / 10 => limits::HOLD_MS_MIN..=limits::HOLD_MS_MAX,
        1 => any::<u64>(),
    ]
    .boxed()
}

/// Mostly a hold number given out in a short run.
fn hold_number() -> BoxedStrategy<u64> {
    prop_oneof![PLAUSIBLE => 3u64..8, PLAUSIBLE / 3 => 1u64..12, 1 => any::<u64>()].boxed()
}

/// `Hold` of named seats, or of the best N (in a category, under a price, split or not).
fn hold() -> BoxedStrategy<Command> {
    let best = (
        0u32..=6,
        proptest::option::of(select(&["front", "rear", "none", "x y"][..]).prop_map(String::from)),
        proptest::option::of(0u64..10_000),
        any::<bool>(),
    )
        .prop_map(|(count, category, max_price_minor, split)| {
            HoldTarget::Best(BestAsk {
                count,
                category,
                max_price_minor,
                split,
            })
        });
    let target = prop_oneof![
        2 => event_and_seats().prop_map(|(event, seats)| (event, HoldTarget::Seats(seats))),
        1 => (event(), best),
    ];
    // Mostly a maximum no shorter than the hold, as a node sends; sometimes any.
    let max_extra = prop_oneof![PLAUSIBLE => 0u64..6_000, 1 => any::<u64>()];
    (request_id(), user(), target, hold_ms(), max_extra, now_ms())
        .prop_map(
            |(request_id, actor, (event, target), duration_ms, extra, now_ms)| Command::Hold {
                request_id,
                actor,
                event,
                target,
                duration_ms,
                max_ms: duration_ms.wrapping_add(extra),
                now_ms,
            },
        )
        .boxed()
}

/// `ConfirmHold`, `ExtendHold` or `ReleaseHold` of a hold by number.
fn hold_change() -> BoxedStrategy<Command> {
    let payment = proptest::option::of(select(vec![
        "pay_1".to_string(),
        String::new(),
        "p q".into(),
        "p".repeat(limits::PAYMENT_REF_LEN_MAX + 1),
    ]));
    (
        0u8..3,
        request_id(),
        user(),
        hold_number(),
        payment,
        hold_ms(),
        now_ms(),
    )
        .prop_map(
            |(kind, request_id, actor, hold, payment_ref, duration_ms, now_ms)| match kind {
                0 => Command::ConfirmHold {
                    request_id,
                    actor,
                    hold,
                    payment_ref,
                    now_ms,
                },
                1 => Command::ExtendHold {
                    request_id,
                    actor,
                    hold,
                    duration_ms,
                    now_ms,
                },
                _ => Command::ReleaseHold {
                    request_id,
                    actor,
                    hold,
                    now_ms,
                },
            },
        )
        .boxed()
}

/// `CheckIn` of a seat of a booking, by (mostly) an admin: mostly a ticket of the base
/// state's bookings, so that second scans happen.
fn check_in() -> BoxedStrategy<Command> {
    let base_ticket = select(&[("show", "A1", 1u64), ("show", "A2", 1), ("demo", "S1", 2)][..])
        .prop_map(|(event, seat, booking)| (event.to_string(), seat.to_string(), booking));
    let any_ticket = (event_and_seats(), hold_number()).prop_map(|((event, seats), booking)| {
        (event, seats.into_iter().next().unwrap_or_default(), booking)
    });
    let ticket = prop_oneof![2 => base_ticket, 1 => any_ticket];
    (request_id(), admin(), ticket, now_ms())
        .prop_map(
            |(request_id, actor, (event, seat, booking), now_ms)| Command::CheckIn {
                request_id,
                actor,
                event,
                seat,
                booking,
                now_ms,
            },
        )
        .boxed()
}

/// `Bootstrap`, its first admin given by a setup code or by a password.
fn bootstrap() -> BoxedStrategy<Command> {
    (any::<[u8; 32]>(), now_ms(), password(), any::<bool>())
        .prop_map(|(code, now_ms, password, by_code)| Command::Bootstrap {
            now_ms,
            first_admin: Some(if by_code {
                FirstAdmin::SetupCode(code)
            } else {
                FirstAdmin::Password(password)
            }),
        })
        .boxed()
}

/// `SetupAdmin` with a new name and any setup code.
fn setup_admin() -> BoxedStrategy<Command> {
    (request_id(), new_user(), password(), any::<[u8; 32]>())
        .prop_map(
            |(request_id, name, password, setup_code)| Command::SetupAdmin {
                request_id,
                name,
                password,
                setup_code,
            },
        )
        .boxed()
}

/// `RevokeTokens` of one user by another.
fn revoke_tokens() -> BoxedStrategy<Command> {
    (request_id(), user(), user())
        .prop_map(|(request_id, actor, user)| Command::RevokeTokens {
            request_id,
            actor,
            user,
        })
        .boxed()
}

/// `SetPassword` of one user by another.
fn set_password() -> BoxedStrategy<Command> {
    (request_id(), user(), user(), password())
        .prop_map(|(request_id, actor, user, password)| Command::SetPassword {
            request_id,
            actor,
            user,
            password,
        })
        .boxed()
}

/// `SetDisabled` (either way) of one user by another.
fn set_disabled() -> BoxedStrategy<Command> {
    (request_id(), user(), user(), any::<bool>())
        .prop_map(|(request_id, actor, user, disabled)| Command::SetDisabled {
            request_id,
            actor,
            user,
            disabled,
        })
        .boxed()
}

/// `AddUser` of a customer or (less often) an admin, by a user or by nobody (registration).
fn add_user() -> BoxedStrategy<Command> {
    let role = prop_oneof![3 => Just(Role::Customer), 1 => Just(Role::Admin)];
    (
        request_id(),
        proptest::option::of(user()),
        new_user(),
        role,
        password(),
    )
        .prop_map(
            |(request_id, actor, name, role, password)| Command::AddUser {
                request_id,
                actor,
                name,
                role,
                password,
            },
        )
        .boxed()
}

/// `CreateEvent` by (mostly) an admin.
fn create_event() -> BoxedStrategy<Command> {
    (request_id(), admin(), spec(), now_ms())
        .prop_map(|(request_id, actor, spec, now_ms)| Command::CreateEvent {
            request_id,
            actor,
            spec,
            now_ms,
        })
        .boxed()
}

/// `Reserve` of seats of an event.
fn reserve() -> BoxedStrategy<Command> {
    (request_id(), user(), event_and_seats(), now_ms())
        .prop_map(
            |(request_id, actor, (event, seats), now_ms)| Command::Reserve {
                request_id,
                actor,
                event,
                seats,
                now_ms,
            },
        )
        .boxed()
}

/// `Cancel` of a booking by its id, or (more often) of seats.
fn cancel() -> BoxedStrategy<Command> {
    let target = prop_oneof![
        1 => booking_id().prop_map(CancelTarget::Booking),
        2 => event_and_seats().prop_map(|(event, seats)| CancelTarget::Seats { event, seats }),
    ];
    (request_id(), user(), target, now_ms())
        .prop_map(|(request_id, actor, target, now_ms)| Command::Cancel {
            request_id,
            actor,
            target,
            now_ms,
        })
        .boxed()
}

#[derive(Clone, Debug)]
enum Step {
    Apply(Command),
    /// The previous command again, as a client's retry would send it.
    Retry,
}

fn step() -> BoxedStrategy<Step> {
    prop_oneof![15 => command().prop_map(Step::Apply), 1 => Just(Step::Retry)].boxed()
}

/// A bootstrapped cluster with an admin, two customers, three events and two bookings.
fn base() -> State {
    let mut state = State::default();
    let mut commands = vec![Command::Bootstrap {
        now_ms: 0,
        first_admin: Some(FirstAdmin::Password(HASH)),
    }];
    for (name, role) in [
        ("root", Role::Admin),
        ("ana", Role::Customer),
        ("bo", Role::Customer),
    ] {
        commands.push(Command::AddUser {
            request_id: format!("add-{name}"),
            actor: Some(crate::domain::FIRST_ADMIN.into()),
            name: name.into(),
            role,
            password: HASH,
        });
    }
    for (name, rows, seats_per_row, max_seats_per_user) in [("show", 2, 5, 3), ("gig", 3, 4, 16)] {
        let categories = match name {
            "gig" => gig_categories(),
            _ => Vec::new(),
        };
        let currency = if categories.is_empty() { "" } else { "EUR" };
        commands.push(Command::CreateEvent {
            request_id: format!("create-{name}"),
            actor: "root".into(),
            spec: EventSpec {
                name: name.into(),
                row_labels: SeatMap::default_row_labels(rows),
                seats_per_row,
                max_seats_per_user,
                categories,
                currency: currency.into(),
            },
            now_ms: 0,
        });
    }
    for (actor, event, seats) in [("ana", "show", ["A1", "A2"]), ("bo", "demo", ["S1", "S2"])] {
        commands.push(Command::Reserve {
            request_id: format!("reserve-{actor}"),
            actor: actor.into(),
            event: event.into(),
            seats: seats.iter().map(|s| s.to_string()).collect(),
            now_ms: 0,
        });
    }
    for command in &commands {
        let outcome = state.apply(command);
        assert!(
            !matches!(outcome, Outcome::Rejected(_)),
            "{command:?}: {outcome:?}"
        );
    }
    state
}

/// gig is priced: the front row (at most 2 a person), and the rest.
fn gig_categories() -> Vec<CategorySpec> {
    let category = |name: &str, price_minor, cover: &str, max_seats_per_user| CategorySpec {
        name: name.into(),
        price_minor,
        covers: vec![cover.into()],
        max_seats_per_user,
    };
    vec![
        category("front", 8_000, "A", 2),
        category("rear", 4_500, "B-C", 0),
    ]
}

/// The name of an outcome's variant (and a rejection's), for the tally of paths walked.
fn kind(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Rejected(rejection) => {
            let debug = format!("{rejection:?}");
            let name = debug.split(['(', ' ']).next().unwrap_or_default();
            format!("Rejected({name})")
        }
        other => {
            let debug = format!("{other:?}");
            debug
                .split(['(', ' '])
                .next()
                .unwrap_or_default()
                .to_string()
        }
    }
}

/// The case count: `PROPTEST_CASES` if set, so that CI and a long run can choose.
fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(CASES_DEFAULT)
}

// apply neither panics nor breaks an invariant, and refusals change nothing, on any sequence
// of plausible and hostile commands from a reachable state.
#[test]
fn apply_is_total() {
    let cases = cases();
    let config = Config {
        cases,
        source_file: Some(file!()),
        ..Config::default()
    };
    let start = prop_oneof![9 => Just(base()), 1 => Just(State::default())];
    let seen: RefCell<BTreeMap<String, u64>> = RefCell::default();
    let mut runner = TestRunner::new(config);
    let result = runner.run(
        &(start, vec(step(), 1..=STEPS_MAX)),
        |(mut state, steps)| {
            let mut last: Option<(Command, Outcome)> = None;
            for step in steps {
                let command = match (step, &last) {
                    (Step::Apply(command), _) => command,
                    (Step::Retry, Some((command, _))) => command.clone(),
                    (Step::Retry, None) => continue,
                };
                let outcome = apply_checked(&mut state, &command, last.as_ref())?;
                *seen.borrow_mut().entry(kind(&outcome)).or_default() += 1;
                last = Some((command, outcome));
            }
            Ok(())
        },
    );
    if let Err(failure) = result {
        panic!("{failure}");
    }
    let seen = seen.into_inner();
    println!("apply_is_total: {cases} cases; outcomes {seen:?}");
    if cases >= 1_000 {
        assert_paths_walked(&seen);
    }
}

/// Applies one command and checks the property: the invariants hold, a refusal changed
/// nothing but the remembered outcomes (a malformed command not even those), and a retry of
/// the `last` command got the same outcome as the first time.
fn apply_checked(
    state: &mut State,
    command: &Command,
    last: Option<&(Command, Outcome)>,
) -> Result<Outcome, TestCaseError> {
    let before = state.clone();
    // What the state would be after time moved on alone: a refusal may change no more.
    let mut advanced = before.clone();
    if let (Ok(()), Some(now)) = (validate::command(command), command.now_ms()) {
        advanced.advance_clock(now, &mut Vec::new());
    }
    let outcome = state.apply(command);
    prop_assert_eq!(state.check_invariants(), Ok(()), "after {:?}", command);
    match &outcome {
        Outcome::Rejected(Rejection::Invalid(_)) => {
            prop_assert!(
                *state == before,
                "{:?} was malformed yet changed the state",
                command
            );
        }
        Outcome::Rejected(_) => prop_assert!(
            state.eq_but_dedupe(&advanced),
            "{:?} was refused yet changed the state",
            command
        ),
        _ => {}
    }
    if let Some((previous, first)) = last {
        // Bootstrap and Sweep carry no request id: a second one is another command.
        let retry = previous == command
            && !matches!(command, Command::Bootstrap { .. } | Command::Sweep { .. });
        if retry {
            prop_assert_eq!(first, &outcome, "a retry of {:?} acted anew", command);
        }
    }
    Ok(outcome)
}

/// Both the accepting and the refusing paths must have been walked, or the property says
/// little (a handful of cases may legitimately miss some, so only a run of many is held to
/// this).
fn assert_paths_walked(seen: &BTreeMap<String, u64>) {
    for kind in [
        "UserAdded",
        "EventCreated",
        "Reserved",
        "Cancelled",
        "Rejected(Invalid)",
        "Rejected(SeatsTaken)",
        "Rejected(LimitReached)",
        "Rejected(CategoryLimitReached)",
        "Rejected(NotOwner)",
        "Rejected(UnknownUser)",
        "Held",
        "Confirmed",
        "HoldExtended",
        "HoldReleased",
        "CheckedIn",
        "Swept",
        "Rejected(HoldExpired)",
        "Rejected(NotYourHold)",
        "Rejected(SeatsHeld)",
        "Rejected(AlreadyCheckedIn)",
        "Rejected(TicketVoid)",
    ] {
        assert!(seen.contains_key(kind), "no {kind} in {seen:?}");
    }
}
