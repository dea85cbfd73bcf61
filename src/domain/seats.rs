//! The seat map of one event: `A1`..`A40` is row `A`, seats 1 to 40. What a seat id looks
//! like is [`validate`]'s to say; this module only imports from it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::validate::{self, split_seat_id, Invalid};

/// The layout of an event's seats; it maps seat ids to dense indices and back.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct SeatMap {
    row_labels: Vec<String>,
    row_index: BTreeMap<String, u32>,
    seats_per_row: u32,
}

impl SeatMap {
    /// A map of the given rows; refused unless the shape is one `validate::event_shape`
    /// accepts, so that a map's seat count always fits a u32 and its labels name one row each.
    pub fn new(row_labels: Vec<String>, seats_per_row: u32) -> Result<SeatMap, Invalid> {
        if row_labels.is_empty() {
            return Err("an event needs at least one row".into());
        }
        // More labels than a u32 counts are simply too many rows.
        let rows = u32::try_from(row_labels.len()).unwrap_or(u32::MAX);
        validate::event_shape(rows, seats_per_row, &row_labels)?;
        let row_index = row_labels.iter().cloned().zip(0u32..).collect();
        Ok(SeatMap {
            row_labels,
            row_index,
            seats_per_row,
        })
    }

    /// Row labels A..Z, AA..AZ, BA.. as spreadsheets name columns.
    pub fn default_row_labels(rows: u32) -> Vec<String> {
        (0..rows)
            .map(|mut n| {
                let mut label = Vec::new();
                loop {
                    label.push(b'A' + (n % 26) as u8);
                    if n < 26 {
                        break;
                    }
                    n = n / 26 - 1;
                }
                label.reverse();
                String::from_utf8_lossy(&label).into_owned()
            })
            .collect()
    }

    pub fn rows(&self) -> u32 {
        // `new` allows at most limits::ROWS_MAX rows; saturating keeps a map that came from
        // elsewhere (a snapshot) from wrapping.
        u32::try_from(self.row_labels.len()).unwrap_or(u32::MAX)
    }

    pub fn seats_per_row(&self) -> u32 {
        self.seats_per_row
    }

    pub fn row_labels(&self) -> &[String] {
        &self.row_labels
    }

    /// The number of seats. Saturates rather than wraps: a wrapped count is what once let a
    /// seat index run past the end of an event's seats.
    pub fn len(&self) -> u32 {
        self.rows().saturating_mul(self.seats_per_row)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The dense index of a seat id, if the event has that seat. Ids are case-insensitive.
    pub fn index(&self, seat: &str) -> Option<u32> {
        let (row, number) = split_seat_id(seat)?;
        let row = self.row_index.get(&row.to_ascii_uppercase())?;
        let number: u32 = number.parse().ok()?;
        if number == 0 || number > self.seats_per_row {
            return None;
        }
        let index = row
            .checked_mul(self.seats_per_row)?
            .checked_add(number - 1)?;
        (index < self.len()).then_some(index)
    }

    /// The canonical id of the seat at a dense index. Indices come from [`SeatMap::index`]; one
    /// outside the map gets `#<index>`, which names no seat, rather than a panic.
    pub fn id(&self, index: u32) -> String {
        match (self.row_label(index), index.checked_rem(self.seats_per_row)) {
            (Some(row), Some(seat)) => format!("{row}{}", u64::from(seat) + 1),
            _ => format!("#{index}"),
        }
    }

    /// The row label of a dense index; empty for an index outside the map.
    pub fn row_of(&self, index: u32) -> &str {
        self.row_label(index).unwrap_or_default()
    }

    fn row_label(&self, index: u32) -> Option<&str> {
        let row = usize::try_from(index.checked_div(self.seats_per_row)?).ok()?;
        self.row_labels.get(row).map(String::as_str)
    }

    /// The map's own consistency, for `State::check_invariants`: a valid shape, and the index
    /// of row labels agreeing with the labels.
    pub fn check(&self) -> Result<(), Invalid> {
        validate::event_shape(self.rows(), self.seats_per_row, &self.row_labels)?;
        let agrees = self.row_index.len() == self.row_labels.len()
            && self
                .row_labels
                .iter()
                .zip(0u32..)
                .all(|(label, i)| self.row_index.get(label) == Some(&i));
        if !agrees {
            return Err("the row index disagrees with the row labels".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_labels_run_like_spreadsheet_columns() {
        let labels = SeatMap::default_row_labels(30);
        assert_eq!(labels[0], "A");
        assert_eq!(labels[25], "Z");
        assert_eq!(labels[26], "AA");
        assert_eq!(labels[29], "AD");
        assert_eq!(SeatMap::default_row_labels(703)[702], "AAA");
    }

    #[test]
    fn seat_ids_round_trip_and_are_case_insensitive() {
        let map = SeatMap::new(SeatMap::default_row_labels(3), 40).expect("valid shape");
        assert_eq!(map.index("A1"), Some(0));
        assert_eq!(map.index("a40"), Some(39));
        assert_eq!(map.index("B1"), Some(40));
        assert_eq!(map.id(79), "B40");
        for i in 0..map.len() {
            assert_eq!(map.index(&map.id(i)), Some(i));
        }
    }

    #[test]
    fn seats_outside_the_map_are_unknown() {
        let map = SeatMap::new(vec!["S".into()], 10).expect("valid shape");
        for bad in ["S0", "S11", "T1", "S", "1", "", "S1x", "S-1", "SS1", "S01x"] {
            assert_eq!(map.index(bad), None, "{bad}");
        }
        assert_eq!(map.index("s2"), Some(1));
    }

    // The poison pill: 2 rows of 2^31 seats wrapped the u32 seat count to 0.
    #[test]
    fn a_map_whose_seat_count_would_overflow_is_refused() {
        let labels = SeatMap::default_row_labels(2);
        assert!(SeatMap::new(labels.clone(), 1 << 31).is_err());
        assert!(SeatMap::new(labels, u32::MAX).is_err());
        assert!(SeatMap::new(Vec::new(), 10).is_err());
        assert!(SeatMap::new(vec!["A".into(), "A".into()], 10).is_err());
        let widest = SeatMap::default_row_labels(crate::limits::ROWS_MAX);
        let map = SeatMap::new(widest, crate::limits::SEATS_PER_ROW_MAX).expect("largest shape");
        assert_eq!(map.len(), crate::limits::SEATS_PER_EVENT_MAX);
        assert_eq!(map.check(), Ok(()));
    }

    // Every lookup answers for any index or id, inside the map or not.
    #[test]
    fn lookups_outside_the_map_do_not_panic() {
        let map = SeatMap::new(vec!["A".into(), "B".into()], 3).expect("valid shape");
        assert_eq!(map.id(5), "B3");
        assert_eq!(map.id(6), "#6");
        assert_eq!(map.id(u32::MAX), format!("#{}", u32::MAX));
        assert_eq!(map.row_of(u32::MAX), "");
        assert_eq!(map.index(&format!("A{}", u64::MAX)), None);
        assert_eq!(map.index("A4"), None);
    }
}
