//! Seat ids and the seat map of one event: `A1`..`A40` is row `A`, seats 1 to 40.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The layout of an event's seats; it maps seat ids to dense indices and back.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct SeatMap {
    row_labels: Vec<String>,
    row_index: BTreeMap<String, u32>,
    seats_per_row: u32,
}

impl SeatMap {
    pub fn new(row_labels: Vec<String>, seats_per_row: u32) -> SeatMap {
        let row_index = row_labels
            .iter()
            .enumerate()
            .map(|(i, label)| (label.clone(), i as u32))
            .collect();
        SeatMap {
            row_labels,
            row_index,
            seats_per_row,
        }
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
        self.row_labels.len() as u32
    }

    pub fn seats_per_row(&self) -> u32 {
        self.seats_per_row
    }

    pub fn row_labels(&self) -> &[String] {
        &self.row_labels
    }

    pub fn len(&self) -> u32 {
        self.rows() * self.seats_per_row
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
        Some(row * self.seats_per_row + (number - 1))
    }

    /// The canonical id of the seat at a dense index.
    pub fn id(&self, index: u32) -> String {
        let row = &self.row_labels[(index / self.seats_per_row) as usize];
        format!("{row}{}", index % self.seats_per_row + 1)
    }

    pub fn row_of(&self, index: u32) -> &str {
        &self.row_labels[(index / self.seats_per_row) as usize]
    }
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
        let map = SeatMap::new(SeatMap::default_row_labels(3), 40);
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
        let map = SeatMap::new(vec!["S".into()], 10);
        for bad in ["S0", "S11", "T1", "S", "1", "", "S1x", "S-1", "SS1", "S01x"] {
            assert_eq!(map.index(bad), None, "{bad}");
        }
        assert_eq!(map.index("s2"), Some(1));
    }
}
