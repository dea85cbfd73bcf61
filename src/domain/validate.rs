//! The shape of a request, checked by the node that receives it before anything is
//! proposed: a malformed request never reaches the log. Each check returns a message a person
//! understands; the server turns it into INVALID_ARGUMENT.

use crate::limits;

pub type Invalid = String;

/// User, event and row names: 1 to 64 of `[A-Za-z0-9_-]`.
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
        if super::seats::split_seat_id(value).is_none() {
            return Err(format!(
                "'{value}' is not a seat id: a row's letters, then a number, like A12"
            ));
        }
        let seat = value.to_ascii_uppercase();
        if seats.contains(&seat) {
            return Err(format!("seat {seat} is named twice"));
        }
        seats.push(seat);
    }
    Ok(seats)
}

pub fn booking_id(value: &str) -> Result<(), Invalid> {
    if value.is_empty() || value.len() > limits::BOOKING_ID_LEN_MAX {
        return Err(format!(
            "'{value}' is not a booking id (they look like bk-12)"
        ));
    }
    Ok(())
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
    if !row_labels.is_empty() {
        if row_labels.len() != rows as usize {
            return Err(format!("{} row labels for {rows} rows", row_labels.len()));
        }
        let mut seen = std::collections::BTreeSet::new();
        for label in row_labels {
            if label.is_empty() || label.len() > 4 || !label.chars().all(|c| c.is_ascii_uppercase())
            {
                return Err(format!(
                    "row label '{label}' must be 1 to 4 capital letters"
                ));
            }
            if !seen.insert(label) {
                return Err(format!("row label '{label}' is used twice"));
            }
        }
    }
    Ok(())
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
