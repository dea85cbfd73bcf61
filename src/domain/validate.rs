//! The shape of a request, checked by the node that receives it before anything is
//! proposed, and again by `State::apply` through [`command`]: a malformed request should never
//! reach the log, and one that does anyway (a bug, an older node) is refused rather than
//! replayed into a panic. Each check returns a message a person understands; the server turns
//! it into INVALID_ARGUMENT.
//!
//! It is also the one home of the grammar of names and ids: what a seat id, an event name, a
//! booking id and a request id look like. Everything that checks one (the server, the
//! assistant's tools and proposals, the seat map) asks here, so they cannot disagree.

use super::{
    BestAsk, CancelTarget, CategorySpec, Command, EventSpec, FirstAdmin, HoldTarget, PasswordHash,
};
use crate::limits;

pub type Invalid = String;

/// User, event and row names: 1 to 64 of `[A-Za-z0-9_-]`.
/// User names are one per person whatever their case: "Admin" is "admin". Checked names are
/// ASCII, so folding is ASCII lowercase.
pub fn fold_name(value: &str) -> String {
    value.to_ascii_lowercase()
}

/// A user name as stored: checked, and already folded (so "Admin" cannot sit beside "admin").
pub fn folded_name(value: &str) -> Result<(), Invalid> {
    name("user", value)?;
    if fold_name(value) != value {
        return Err(format!("the user name '{value}' must be in lower case"));
    }
    Ok(())
}

/// Names a stranger may not register: they would pass for the system or its operators.
pub fn is_reserved_name(folded: &str) -> bool {
    const RESERVED: [&str; 9] = [
        "admin",
        "administrator",
        "root",
        "system",
        "ticket",
        "operator",
        "support",
        "nobody",
        "anonymous",
    ];
    RESERVED.contains(&folded)
}

pub fn name(kind: &str, value: &str) -> Result<(), Invalid> {
    if value.is_empty() {
        return Err(format!("the {kind} name is empty"));
    }
    if value.len() > limits::NAME_LEN_MAX {
        return Err(format!(
            "the {kind} name is {} characters long; the most is {}",
            value.len(),
            limits::NAME_LEN_MAX
        ));
    }
    if !value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(format!(
            "the {kind} name '{value}' may hold only letters, digits, '_' and '-'"
        ));
    }
    Ok(())
}

/// Whether `value` is an event name [`name`] accepts.
pub fn is_event_name(value: &str) -> bool {
    name("event", value).is_ok()
}

pub fn request_id(value: &str) -> Result<(), Invalid> {
    if value.is_empty() {
        return Err("the request id is empty; send a unique id with every change".into());
    }
    if value.len() > limits::REQUEST_ID_LEN_MAX {
        return Err(format!(
            "the request id is {} characters long; the most is {}",
            value.len(),
            limits::REQUEST_ID_LEN_MAX
        ));
    }
    if !value.chars().all(|c| c.is_ascii_graphic()) {
        return Err("the request id may hold only printable ASCII characters".into());
    }
    let mark = super::request_id::SessionKey::MARK;
    if value.starts_with(mark) && super::request_id::SessionKey::parse(value).is_none() {
        return Err(format!(
            "a request id starting with '{mark}' is a client session's:              {mark}SESSION.SEQ.ACKED in hex, SEQ from 1 and ACKED at most SEQ"
        ));
    }
    Ok(())
}

pub fn password(value: &str) -> Result<(), Invalid> {
    let n = value.chars().count();
    if n < limits::PASSWORD_LEN_MIN {
        return Err(format!(
            "the password is too short; use at least {} characters",
            limits::PASSWORD_LEN_MIN
        ));
    }
    if value.len() > limits::PASSWORD_LEN_MAX {
        return Err(format!(
            "the password is too long; the most is {} bytes",
            limits::PASSWORD_LEN_MAX
        ));
    }
    Ok(())
}

/// Seat ids of one request: 1 to 16, each well-formed, no seat twice. Returns them upper-cased.
pub fn seats(values: &[String]) -> Result<Vec<String>, Invalid> {
    if values.is_empty() {
        return Err("name at least one seat".into());
    }
    if values.len() > limits::SEATS_PER_REQUEST_MAX {
        return Err(format!(
            "{} seats in one request; the most is {}",
            values.len(),
            limits::SEATS_PER_REQUEST_MAX
        ));
    }
    let mut seats: Vec<String> = Vec::with_capacity(values.len());
    for value in values {
        let seat = seat_id(value)?;
        if seats.contains(&seat) {
            return Err(format!("seat {seat} is named twice"));
        }
        seats.push(seat);
    }
    Ok(seats)
}

/// One seat id: a row's letters, then a number (`A12`, `s2`), at most
/// `limits::SEAT_ID_LEN_MAX` characters. Returns it upper-cased, as seat maps name seats.
pub fn seat_id(value: &str) -> Result<String, Invalid> {
    if value.is_empty() {
        return Err("a seat id is empty".into());
    }
    if value.len() > limits::SEAT_ID_LEN_MAX {
        return Err(format!(
            "the seat id '{}…' is too long; the most is {} characters",
            value
                .chars()
                .take(limits::SEAT_ID_LEN_MAX)
                .collect::<String>(),
            limits::SEAT_ID_LEN_MAX
        ));
    }
    if split_seat_id(value).is_none() {
        return Err(format!(
            "'{value}' is not a seat id: a row's letters, then a number, like A12"
        ));
    }
    Ok(value.to_ascii_uppercase())
}

/// Whether `value` is a seat id [`seat_id`] accepts.
pub fn is_seat_id(value: &str) -> bool {
    seat_id(value).is_ok()
}

/// Splits `AB12` into (`AB`, `12`): letters, then digits, nothing else.
pub fn split_seat_id(seat: &str) -> Option<(&str, &str)> {
    let digits_at = seat.find(|c: char| c.is_ascii_digit())?;
    let (row, number) = seat.split_at(digits_at);
    let well_formed = !row.is_empty()
        && row.chars().all(|c| c.is_ascii_alphabetic())
        && number.chars().all(|c| c.is_ascii_digit());
    well_formed.then_some((row, number))
}

/// A booking id as a request may carry it: bounded, so that it can be logged and replayed.
/// One that names no booking (see [`parse_booking_id`]) is the state's to refuse, as unknown.
pub fn booking_id(value: &str) -> Result<(), Invalid> {
    if value.is_empty() || value.len() > limits::BOOKING_ID_LEN_MAX {
        return Err(format!(
            "'{}' is not a booking id (they look like bk-12)",
            shown(value, limits::BOOKING_ID_LEN_MAX)
        ));
    }
    Ok(())
}

/// `bk-<booking number>`: the id of the booking with that number.
pub fn format_booking_id(number: u64) -> String {
    format!("bk-{number}")
}

/// The booking number a booking id names, if it is one that [`format_booking_id`] could have
/// made. (The state machine replays committed cancels through this: what it accepts must not
/// change.)
pub fn parse_booking_id(id: &str) -> Option<u64> {
    id.strip_prefix("bk-")?.parse().ok()
}

/// Whether `value` is a booking id that can name a booking: within [`booking_id`]'s bound and
/// of the form `bk-N`.
pub fn is_booking_id(value: &str) -> bool {
    booking_id(value).is_ok() && parse_booking_id(value).is_some()
}

/// Rows and seats of a new event, and its row labels when given.
pub fn event_shape(rows: u32, seats_per_row: u32, row_labels: &[String]) -> Result<(), Invalid> {
    if rows == 0 || rows > limits::ROWS_MAX {
        return Err(format!(
            "an event has 1 to {} rows, not {rows}",
            limits::ROWS_MAX
        ));
    }
    if seats_per_row == 0 || seats_per_row > limits::SEATS_PER_ROW_MAX {
        return Err(format!(
            "a row has 1 to {} seats, not {seats_per_row}",
            limits::SEATS_PER_ROW_MAX
        ));
    }
    // Implied by the two bounds above today; checked so that raising one cannot let the
    // seat count overflow.
    if rows
        .checked_mul(seats_per_row)
        .is_none_or(|seats| seats > limits::SEATS_PER_EVENT_MAX)
    {
        return Err(format!(
            "{rows} rows of {seats_per_row} seats is more than the {} seats an event may have",
            limits::SEATS_PER_EVENT_MAX
        ));
    }
    if !row_labels.is_empty() {
        if row_labels.len() != rows as usize {
            return Err(format!("{} row labels for {rows} rows", row_labels.len()));
        }
        let mut seen = std::collections::BTreeSet::new();
        for label in row_labels {
            if !is_row_label(label) {
                return Err(format!(
                    "row label '{}' must be 1 to 4 capital letters",
                    shown(label, 4)
                ));
            }
            if !seen.insert(label) {
                return Err(format!("row label '{label}' is used twice"));
            }
        }
    }
    Ok(())
}

/// A row label: 1 to 4 capital letters (`A`, `AB`).
pub fn is_row_label(label: &str) -> bool {
    (1..=4).contains(&label.len()) && label.chars().all(|c| c.is_ascii_uppercase())
}

/// A value for a message, cut short: whoever sent a megabyte need not get it back.
fn shown(value: &str, max_chars: usize) -> String {
    let mut shown: String = value.chars().take(max_chars).collect();
    if shown.len() < value.len() {
        shown.push('…');
    }
    shown
}

/// The per-person limit of an event as it is replicated (the server turns 0 into the
/// default): at least one seat. A limit above the event's size just never binds.
pub fn max_seats_per_user(value: u32) -> Result<(), Invalid> {
    if value == 0 {
        return Err("an event must let a person reserve at least one seat".into());
    }
    Ok(())
}

/// A stored password hash: no fewer rounds than any node may be configured with.
pub fn password_hash(value: &PasswordHash) -> Result<(), Invalid> {
    if value.iterations < limits::PBKDF2_ITERATIONS_MIN {
        return Err(format!(
            "a password hash of {} rounds is too weak; the fewest is {}",
            value.iterations,
            limits::PBKDF2_ITERATIONS_MIN
        ));
    }
    Ok(())
}

/// An event as it is replicated: its row labels are always spelled out.
pub fn event_spec(spec: &EventSpec) -> Result<(), Invalid> {
    name("event", &spec.name)?;
    if spec.row_labels.is_empty() {
        return Err("an event needs at least one row".into());
    }
    // More labels than a u32 counts are simply too many rows.
    let rows = u32::try_from(spec.row_labels.len()).unwrap_or(u32::MAX);
    event_shape(rows, spec.seats_per_row, &spec.row_labels)?;
    max_seats_per_user(spec.max_seats_per_user)?;
    categories(&spec.categories, &spec.currency)
}

/// The whole shape of a command, for `State::apply`, which must not trust that the proposer
/// checked it: the same rules as the server's checks above, over the replicated form.
pub fn command(command: &Command) -> Result<(), Invalid> {
    match command {
        Command::Bootstrap { first_admin, .. } => bootstrap_command(first_admin.as_ref()),
        Command::SetupAdmin {
            request_id,
            name,
            password,
            ..
        } => setup_admin_command(request_id, name, password),
        Command::RevokeTokens {
            request_id,
            actor,
            user,
        }
        | Command::SetDisabled {
            request_id,
            actor,
            user,
            ..
        } => user_command(request_id, actor, user),
        Command::SetPassword {
            request_id,
            actor,
            user,
            password,
        } => set_password_command(request_id, actor, user, password),
        Command::AddUser {
            request_id,
            actor,
            name,
            password,
            ..
        } => add_user_command(request_id, actor.as_deref(), name, password),
        Command::CreateEvent {
            request_id,
            actor,
            spec,
            ..
        } => create_event_command(request_id, actor, spec),
        Command::Reserve {
            request_id,
            actor,
            event,
            seats,
            ..
        } => reserve_command(request_id, actor, event, seats),
        Command::Cancel {
            request_id,
            actor,
            target,
            ..
        } => cancel_command(request_id, actor, target),
        Command::Hold { .. }
        | Command::ConfirmHold { .. }
        | Command::ExtendHold { .. }
        | Command::ReleaseHold { .. }
        | Command::CheckIn { .. }
        | Command::Sweep { .. } => checkout_command(command),
    }
}

/// The checkout commands' shape: who asks, and what of which hold, seats or ticket.
fn checkout_command(command: &Command) -> Result<(), Invalid> {
    match command {
        Command::Hold {
            request_id,
            actor,
            event,
            target,
            duration_ms,
            max_ms,
            ..
        } => hold_command(request_id, actor, event, target, *duration_ms, *max_ms),
        Command::ConfirmHold {
            request_id,
            actor,
            payment_ref,
            ..
        } => {
            requested_by(request_id, actor)?;
            payment_ref.as_deref().map_or(Ok(()), self::payment_ref)
        }
        Command::ExtendHold {
            request_id,
            actor,
            duration_ms,
            ..
        } => {
            requested_by(request_id, actor)?;
            hold_duration(*duration_ms)
        }
        Command::ReleaseHold {
            request_id, actor, ..
        } => requested_by(request_id, actor),
        Command::CheckIn {
            request_id,
            actor,
            event,
            seat,
            ..
        } => {
            requested_by(request_id, actor)?;
            name("event", event)?;
            seat_id(seat).map(drop)
        }
        Command::Sweep { .. } => Ok(()),
        other => Err(format!("{} is not a checkout command", other.kind())),
    }
}

/// `Hold`: who asks, the event, the seats or how many of the best, and for how long.
fn hold_command(
    id: &str,
    actor: &str,
    event: &str,
    target: &HoldTarget,
    duration_ms: u64,
    max_ms: u64,
) -> Result<(), Invalid> {
    requested_by(id, actor)?;
    name("event", event)?;
    match target {
        HoldTarget::Seats(ids) => seats(ids).map(drop)?,
        HoldTarget::Best(ask) => best_ask(ask)?,
    }
    hold_duration(duration_ms)?;
    hold_duration(max_ms)?;
    if max_ms < duration_ms {
        return Err("a hold's maximum is shorter than the hold".into());
    }
    Ok(())
}

/// How many of the best seats, of which category, at what price.
pub fn best_ask(ask: &BestAsk) -> Result<(), Invalid> {
    if ask.count == 0 || ask.count > limits::BEST_COUNT_MAX {
        return Err(format!(
            "ask for 1 to {} seats, not {}",
            limits::BEST_COUNT_MAX,
            ask.count
        ));
    }
    if let Some(category) = &ask.category {
        name("category", category)?;
    }
    Ok(())
}

/// How long a hold lasts: `limits::HOLD_MS_MIN` to `limits::HOLD_MS_MAX`.
pub fn hold_duration(ms: u64) -> Result<(), Invalid> {
    if !(limits::HOLD_MS_MIN..=limits::HOLD_MS_MAX).contains(&ms) {
        return Err(format!(
            "a hold lasts {} s to {} s, not {} ms",
            limits::HOLD_MS_MIN / 1000,
            limits::HOLD_MS_MAX / 1000,
            ms
        ));
    }
    Ok(())
}

/// A payment reference: printable ASCII, at most `limits::PAYMENT_REF_LEN_MAX` long.
pub fn payment_ref(value: &str) -> Result<(), Invalid> {
    let printable = value.bytes().all(|b| (0x21..0x7f).contains(&b));
    if value.is_empty() || value.len() > limits::PAYMENT_REF_LEN_MAX || !printable {
        return Err(format!(
            "a payment reference is 1 to {} printable characters without spaces",
            limits::PAYMENT_REF_LEN_MAX
        ));
    }
    Ok(())
}

/// `hd-<number>`: the id of the hold with that number (confirmed, it is `bk-<number>`).
pub fn format_hold_id(number: u64) -> String {
    format!("hd-{number}")
}

/// The hold number a hold id names; a booking id of the same number names it too, so that a
/// confirmed hold can be looked up by either.
pub fn parse_hold_id(id: &str) -> Option<u64> {
    if id.len() > limits::BOOKING_ID_LEN_MAX {
        return None;
    }
    id.strip_prefix("hd-")
        .or_else(|| id.strip_prefix("bk-"))?
        .parse()
        .ok()
}

/// A currency code: three capital letters (ISO 4217).
pub fn currency(value: &str) -> Result<(), Invalid> {
    if value.len() != 3 || !value.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(format!(
            "'{}' is not a currency code (three capital letters, like EUR)",
            shown(value, 8)
        ));
    }
    Ok(())
}

/// An event's categories as a request or a command carries them: names, prices and covers
/// within bounds (whether they cover the seats exactly is the seat map's to say).
pub fn categories(list: &[CategorySpec], currency_code: &str) -> Result<(), Invalid> {
    if list.is_empty() {
        return Ok(());
    }
    currency(currency_code)?;
    if list.len() > limits::CATEGORIES_PER_EVENT_MAX {
        return Err(format!(
            "{} categories; an event has at most {}",
            list.len(),
            limits::CATEGORIES_PER_EVENT_MAX
        ));
    }
    let mut names = std::collections::BTreeSet::new();
    for category in list {
        name("category", &category.name)?;
        if !names.insert(category.name.as_str()) {
            return Err(format!("category '{}' is named twice", category.name));
        }
        if category.price_minor > limits::PRICE_MINOR_MAX {
            return Err(format!("the price of '{}' is too high", category.name));
        }
        if category.covers.is_empty() || category.covers.len() > limits::COVERS_PER_CATEGORY_MAX {
            return Err(format!(
                "category '{}' covers 1 to {} rows or ranges",
                category.name,
                limits::COVERS_PER_CATEGORY_MAX
            ));
        }
        for cover in &category.covers {
            if cover.is_empty() || cover.len() > 2 * limits::SEAT_ID_LEN_MAX + 1 {
                return Err(format!(
                    "'{}' is not a row or a seat range",
                    shown(cover, 8)
                ));
            }
        }
    }
    Ok(())
}

/// `Bootstrap`: the first admin's password hash, when the seed makes one.
fn bootstrap_command(first_admin: Option<&FirstAdmin>) -> Result<(), Invalid> {
    match first_admin {
        Some(FirstAdmin::Password(hash)) => password_hash(hash),
        _ => Ok(()),
    }
}

/// `SetupAdmin`: the request id, and the admin to make.
fn setup_admin_command(id: &str, user: &str, password: &PasswordHash) -> Result<(), Invalid> {
    request_id(id)?;
    user_with_password(user, password)
}

/// `RevokeTokens` and `SetDisabled`: who asks, and of which user.
fn user_command(id: &str, actor: &str, user: &str) -> Result<(), Invalid> {
    requested_by(id, actor)?;
    folded_name(user)
}

/// `SetPassword`: who asks, the user and its new password.
fn set_password_command(
    id: &str,
    actor: &str,
    user: &str,
    password: &PasswordHash,
) -> Result<(), Invalid> {
    requested_by(id, actor)?;
    user_with_password(user, password)
}

/// `AddUser`: the request id, the admin who asks (none for a self-registration), and the
/// user to make.
fn add_user_command(
    id: &str,
    actor: Option<&str>,
    user: &str,
    password: &PasswordHash,
) -> Result<(), Invalid> {
    request_id(id)?;
    if let Some(actor) = actor {
        name("user", actor)?;
    }
    user_with_password(user, password)
}

/// `CreateEvent`: who asks, and the event.
fn create_event_command(id: &str, actor: &str, spec: &EventSpec) -> Result<(), Invalid> {
    requested_by(id, actor)?;
    event_spec(spec)
}

/// `Reserve`: who asks, the event and the seats.
fn reserve_command(id: &str, actor: &str, event: &str, ids: &[String]) -> Result<(), Invalid> {
    requested_by(id, actor)?;
    event_seats(event, ids)
}

/// `Cancel`: who asks, and a booking id or the seats of an event.
fn cancel_command(id: &str, actor: &str, target: &CancelTarget) -> Result<(), Invalid> {
    requested_by(id, actor)?;
    match target {
        CancelTarget::Booking(id) => booking_id(id),
        CancelTarget::Seats { event, seats: ids } => event_seats(event, ids),
    }
}

/// The request id and the name of the user who asks.
fn requested_by(id: &str, actor: &str) -> Result<(), Invalid> {
    request_id(id)?;
    name("user", actor)
}

/// A user to store: its name, already folded, and its password hash.
fn user_with_password(user: &str, password: &PasswordHash) -> Result<(), Invalid> {
    folded_name(user)?;
    password_hash(password)
}

/// An event's name and seats in it.
fn event_seats(event: &str, ids: &[String]) -> Result<(), Invalid> {
    name("event", event)?;
    seats(ids).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seats_are_normalised_and_duplicates_refused() {
        assert_eq!(
            seats(&["s2".into(), "A10".into()]),
            Ok(vec!["S2".into(), "A10".into()])
        );
        assert!(seats(&["S2".into(), "s2".into()])
            .unwrap_err()
            .contains("twice"));
        assert!(seats(&[]).is_err());
        assert!(seats(&["".into()]).is_err());
        assert!(seats(&["x".repeat(10_000)])
            .unwrap_err()
            .contains("too long"));
        let many: Vec<String> = (1..=10_000).map(|i| format!("A{i}")).collect();
        assert!(seats(&many).unwrap_err().contains("10000 seats"));
        assert!(seats(&["2A".into()]).is_err());
    }

    #[test]
    fn the_grammar_of_ids() {
        assert_eq!(seat_id("s2"), Ok("S2".into()));
        assert!(is_seat_id("AB200"));
        for bad in [
            "",
            "2A",
            "S",
            "S2; DROP",
            "S-1",
            "S1x",
            &format!("S{}", "1".repeat(20)),
        ] {
            assert!(!is_seat_id(bad), "{bad}");
        }
        assert_eq!(parse_booking_id(&format_booking_id(12)), Some(12));
        assert!(is_booking_id("bk-7"));
        for bad in [
            "",
            "7",
            "bk-",
            "bk-x",
            "BK-7",
            &format!("bk-{}", "1".repeat(40)),
        ] {
            assert!(!is_booking_id(bad), "{bad}");
        }
        assert!(is_event_name("gala-2026_b"));
        assert!(!is_event_name("de mo"));
        assert!(!is_event_name(""));
    }

    #[test]
    fn names_and_request_ids_are_bounded() {
        assert!(name("user", "user1").is_ok());
        assert!(name("user", "").is_err());
        assert!(name("user", "a b").is_err());
        assert!(name("user", &"u".repeat(10_000)).is_err());
        assert!(request_id("r-1").is_ok());
        assert!(request_id("").is_err());
        assert!(request_id(&"r".repeat(10_000)).is_err());
    }
}
