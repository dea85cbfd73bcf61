//! Best available: choose `count` seats for one customer from an event's seat map.
//!
//! Seats are dense indices `row * seats_per_row + seat_in_row`, 0-based; row 0 is the front.
//! The chooser looks for one block of `count` adjacent choosable seats in one row, and among
//! the blocks:
//!
//! - one that strands no seat beats every one that does. A placement strands a seat when a
//!   free seat just outside the block is left as a run of one: its other neighbour is taken
//!   or the row's edge. Nobody wants to sell a lone seat, so we avoid making one;
//! - then the front-most row, then the block whose centre is nearest the row's centre, then
//!   the leftmost. Every tie is broken, so the same map always gives the same seats.
//!
//! When no such block exists and the caller allows splitting, the seats are taken from the
//! largest runs of choosable seats, as few pieces as possible (see [`choose`]).
//!
//! Cost: one pass over the map, calling `spot` once per seat, collects the runs of choosable
//! seats; everything after works on those runs, so a 100,000-seat map is cheap.
//!
//! What it does not do: it knows nothing of events, holds, categories or users, and changes
//! nothing. The caller says through `spot` which seats are free and of the kind asked for,
//! and takes the seats itself.

use std::cmp::Reverse;

/// What the chooser knows of one seat.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Spot {
    /// Reserved or held by someone: cannot be chosen, and ends a run of free seats.
    Taken,
    /// Free and of the kind asked for (e.g. in the category): may be chosen.
    Free,
    /// Free but not of the kind asked for: cannot be chosen, but counts as free when deciding
    /// whether a seat is stranded.
    FreeOther,
}

/// How the caller lets seats be split when no block of `count` adjacent seats exists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    Never,
    Allowed,
}

/// The `count` seats to take, as dense indices in ascending order, or None when there is no
/// choice (`count`, `rows` or `seats_per_row` zero, or a map too large to index in a u32).
///
/// The best block of `count` adjacent `Free` seats in one row wins, by the rules in the
/// module doc. If there is none and `split` is [`Split::Allowed`], the seats come from the
/// largest runs of `Free` seats first (ties: front row, then centre, then leftmost), whole
/// runs while they fit and the rest placed nearest the row's centre within the next largest
/// run; None if fewer than `count` seats are `Free` in all.
pub fn choose(
    rows: u32,
    seats_per_row: u32,
    spot: impl Fn(u32) -> Spot,
    count: u32,
    split: Split,
) -> Option<Vec<u32>> {
    if count == 0 || rows == 0 || seats_per_row == 0 {
        return None;
    }
    // Once the product fits, every index and offset below it does too, so the arithmetic
    // on indices further down cannot overflow.
    rows.checked_mul(seats_per_row)?;
    if count > seats_per_row && split == Split::Never {
        return None; // no row could hold the block: spare the caller a scan
    }
    let mut runs = scan_runs(rows, seats_per_row, &spot);
    if let Some((row, start)) = best_block(&runs, count, seats_per_row) {
        let first = row * seats_per_row + start;
        return Some((first..first + count).collect());
    }
    match split {
        Split::Never => None,
        Split::Allowed => split_pieces(&mut runs, count, seats_per_row),
    }
}

/// What lies just outside one end of a run of `Free` seats, as far as stranding goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    /// The row's edge or a taken seat: a lone `Free` seat left next to it is stranded.
    Wall,
    /// A `FreeOther` seat with nothing free beyond it: taking the run's end seat strands it.
    LoneOther,
    /// A `FreeOther` seat with a free seat beyond it: nothing here can be stranded.
    Open,
}

impl Side {
    /// The side given the seat next to a run's end and the seat beyond that one (None: past
    /// the row's edge). `near` is never `Free`, since runs are as long as they go.
    fn of(near: Option<Spot>, far: Option<Spot>) -> Side {
        match (near, far) {
            (Some(Spot::FreeOther), Some(Spot::Free | Spot::FreeOther)) => Side::Open,
            (Some(Spot::FreeOther), _) => Side::LoneOther,
            _ => Side::Wall,
        }
    }

    /// Whether taking seats up to `gap` seats short of this side strands a seat there.
    fn stranded_by(self, gap: u32) -> bool {
        // Gap 0 leaves the outside seat; gap 1 leaves the run's own end seat, alone unless
        // the outside seat is free.
        matches!((gap, self), (0, Side::LoneOther) | (1, Side::Wall))
    }
}

/// A maximal run of `Free` seats in one row: seats `start..start + len` of row `row`.
#[derive(Clone, Copy, Debug)]
struct Run {
    row: u32,
    start: u32,
    len: u32,
    left: Side,
    right: Side,
}

impl Run {
    /// One past the run's last seat in the row.
    fn end(&self) -> u32 {
        self.start + self.len
    }

    /// Whether taking `count` seats from `start` (inside the run) strands a seat.
    fn strands(&self, start: u32, count: u32) -> bool {
        let gap_left = start.saturating_sub(self.start);
        let gap_right = self.end().saturating_sub(start + count);
        self.left.stranded_by(gap_left) || self.right.stranded_by(gap_right)
    }
}

/// Every run of `Free` seats, row by row and left to right: the one pass over the map.
fn scan_runs(rows: u32, seats_per_row: u32, spot: &impl Fn(u32) -> Spot) -> Vec<Run> {
    let mut runs = Vec::new();
    for row in 0..rows {
        scan_row(row, seats_per_row, spot, &mut runs);
    }
    runs
}

/// Appends the runs of one row, reading each seat once. A run's right side needs two seats
/// past its end, so an ended run waits one seat in `closing` before it is pushed.
fn scan_row(row: u32, seats_per_row: u32, spot: &impl Fn(u32) -> Spot, runs: &mut Vec<Run>) {
    let base = row * seats_per_row;
    // The seat before the current one and the one before that (None: past the edge).
    let (mut before, mut before2) = (None, None);
    // A run still going: its start and its left side.
    let mut open: Option<(u32, Side)> = None;
    // A run that ended at the previous seat, and that seat.
    let mut closing: Option<(Run, Spot)> = None;
    for seat in 0..seats_per_row {
        let here = spot(base + seat);
        if let Some((mut run, near)) = closing.take() {
            run.right = Side::of(Some(near), Some(here));
            runs.push(run);
        }
        match (here, open) {
            (Spot::Free, None) => open = Some((seat, Side::of(before, before2))),
            (Spot::Free, Some(_)) | (_, None) => {}
            (_, Some((start, left))) => {
                let len = seat - start;
                let run = Run {
                    row,
                    start,
                    len,
                    left,
                    right: Side::Wall,
                };
                closing = Some((run, here));
                open = None;
            }
        }
        before2 = before;
        before = Some(here);
    }
    if let Some((mut run, near)) = closing {
        run.right = Side::of(Some(near), None);
        runs.push(run);
    }
    if let Some((start, left)) = open {
        let len = seats_per_row - start;
        runs.push(Run {
            row,
            start,
            len,
            left,
            right: Side::Wall,
        });
    }
}

/// Twice the distance from the centre of `len` seats at `start` to the row's centre: doubled
/// so that half seats stay integers.
fn off_centre(start: u32, len: u32, seats_per_row: u32) -> u64 {
    (2 * u64::from(start) + u64::from(len)).abs_diff(u64::from(seats_per_row))
}

/// The row and start of the best block of `count` adjacent `Free` seats, if any.
fn best_block(runs: &[Run], count: u32, seats_per_row: u32) -> Option<(u32, u32)> {
    runs.iter()
        .filter(|run| run.len >= count)
        .flat_map(|run| {
            (run.start..=run.end() - count).map(move |start| {
                let stranding = run.strands(start, count);
                let centre = off_centre(start, count, seats_per_row);
                (stranding, run.row, centre, start)
            })
        })
        .min()
        .map(|(_, row, _, start)| (row, start))
}

/// The split fallback: whole runs, largest first, then the rest from the next largest run.
/// Taking the largest runs first needs the fewest pieces.
fn split_pieces(runs: &mut [Run], count: u32, seats_per_row: u32) -> Option<Vec<u32>> {
    let free: u64 = runs.iter().map(|run| u64::from(run.len)).sum();
    if free < u64::from(count) {
        return None;
    }
    // Row and start make the key unique, so the order, and the choice, is deterministic.
    runs.sort_unstable_by_key(|run| {
        let centre = off_centre(run.start, run.len, seats_per_row);
        (Reverse(run.len), run.row, centre, run.start)
    });
    let mut chosen = Vec::new();
    let mut remaining = count;
    for run in runs.iter() {
        if remaining == 0 {
            break;
        }
        let take = run.len.min(remaining);
        let first = run.row * seats_per_row + nearest_centre(run, take, seats_per_row);
        chosen.extend(first..first + take);
        remaining -= take;
    }
    chosen.sort_unstable();
    Some(chosen)
}

/// The start of `take` seats inside `run` whose centre is nearest the row's centre, the
/// leftmost on a tie; `take` is at most the run's length.
fn nearest_centre(run: &Run, take: u32, seats_per_row: u32) -> u32 {
    // The distance is convex in the start, so the best start in the run is the row's best
    // (rounded down: leftmost) pulled inside the run.
    let ideal = seats_per_row.saturating_sub(take) / 2;
    ideal.max(run.start).min(run.end().saturating_sub(take))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A map from strings, one row each: `x` taken, `.` free, `o` free of another kind.
    fn parse(rows: &[&str]) -> (u32, u32, Vec<Spot>) {
        let seats_per_row = rows.first().map_or(0, |row| row.len());
        let spots: Vec<Spot> = rows
            .iter()
            .inspect(|row| assert_eq!(row.len(), seats_per_row, "ragged map"))
            .flat_map(|row| row.chars())
            .map(|c| match c {
                'x' => Spot::Taken,
                '.' => Spot::Free,
                'o' => Spot::FreeOther,
                other => panic!("unknown seat {other:?}"),
            })
            .collect();
        (rows.len() as u32, seats_per_row as u32, spots)
    }

    fn pick(rows: &[&str], count: u32, split: Split) -> Option<Vec<u32>> {
        let (rows, seats_per_row, spots) = parse(rows);
        choose(rows, seats_per_row, |i| spots[i as usize], count, split)
    }

    #[test]
    fn picks_the_front_rows_centre() {
        let map = ["..........", ".........."];
        assert_eq!(pick(&map, 2, Split::Never), Some(vec![4, 5]));
        assert_eq!(pick(&map, 3, Split::Never), Some(vec![3, 4, 5]));
    }

    #[test]
    fn breaks_a_centre_tie_to_the_left() {
        assert_eq!(pick(&["......"], 1, Split::Never), Some(vec![2]));
    }

    #[test]
    fn avoids_stranding_a_seat_when_another_choice_exists() {
        // Four of the front row's five strand one seat either way; the back row's four fit.
        let map = ["x.....x", "x....xx"];
        assert_eq!(pick(&map, 4, Split::Never), Some(vec![8, 9, 10, 11]));
    }

    #[test]
    fn strands_a_seat_only_when_nothing_else_exists() {
        assert_eq!(pick(&["x.....x"], 4, Split::Never), Some(vec![1, 2, 3, 4]));
    }

    #[test]
    fn a_seat_already_alone_is_not_counted_as_stranded() {
        // Seat 1 is alone before we come; the front row's block strands nothing new.
        let map = ["x.x....x", "........"];
        assert_eq!(pick(&map, 4, Split::Never), Some(vec![3, 4, 5, 6]));
    }

    #[test]
    fn never_chooses_a_free_other_seat() {
        let map = ["oooooo", "......"];
        assert_eq!(pick(&map, 2, Split::Never), Some(vec![8, 9]));
        assert_eq!(pick(&["o.o.o"], 2, Split::Never), None);
    }

    #[test]
    fn a_free_other_seat_counts_as_free_beside_a_stranded_one() {
        // Leaving seat 2 next to the free seats 0 and 1 strands nothing, so the front row
        // wins; were `o` taken, both placements would strand and the back row would win.
        let map = ["oo.....x", "x....xxx"];
        assert_eq!(pick(&map, 4, Split::Never), Some(vec![3, 4, 5, 6]));
    }

    #[test]
    fn a_lone_free_other_seat_can_be_stranded() {
        // Starting at seat 2 would be centred but would leave seat 1 alone against the wall.
        assert_eq!(pick(&["xo....x"], 3, Split::Never), Some(vec![3, 4, 5]));
    }

    #[test]
    fn split_fallback_takes_the_largest_runs() {
        // The back row's four whole, then one seat nearest the centre of the run of three.
        let map = ["..x...x.", "....xxxx"];
        assert_eq!(pick(&map, 5, Split::Allowed), Some(vec![3, 8, 9, 10, 11]));
        assert_eq!(pick(&map, 5, Split::Never), None);
    }

    #[test]
    fn split_ties_go_to_the_front_row_then_the_centre() {
        let map = ["..x..x..", "..x..x.."];
        assert_eq!(pick(&map, 4, Split::Allowed), Some(vec![0, 1, 3, 4]));
    }

    #[test]
    fn split_is_not_used_when_a_block_exists() {
        let map = ["......xx", "........"];
        assert_eq!(pick(&map, 6, Split::Allowed), Some(vec![0, 1, 2, 3, 4, 5]));
    }

    #[test]
    fn none_when_too_few_free_seats() {
        assert_eq!(pick(&["x..x", "oxo."], 4, Split::Allowed), None);
        assert_eq!(
            pick(&["x..x", "oxo."], 3, Split::Allowed),
            Some(vec![1, 2, 7])
        );
        assert_eq!(pick(&["xxxx"], 1, Split::Allowed), None);
    }

    #[test]
    fn none_for_an_empty_request_or_map() {
        let free = |_| Spot::Free;
        assert_eq!(choose(3, 4, free, 0, Split::Allowed), None);
        assert_eq!(choose(0, 4, free, 1, Split::Allowed), None);
        assert_eq!(choose(3, 0, free, 1, Split::Allowed), None);
    }

    #[test]
    fn none_for_a_map_too_large_to_index() {
        assert_eq!(choose(u32::MAX, 2, |_| Spot::Free, 1, Split::Allowed), None);
    }

    #[test]
    fn a_large_checkerboard_is_split_quickly() {
        // 100,000 seats in 50,000 runs of one: a quadratic fallback would not finish.
        let spot = |i: u32| if i % 2 == 0 { Spot::Free } else { Spot::Taken };
        let chosen = choose(250, 400, spot, 3, Split::Allowed);
        assert_eq!(chosen, Some(vec![198, 200, 202]));
    }

    /// A small random map: rows, seats per row, and its seats.
    fn small_map() -> impl Strategy<Value = (u32, u32, Vec<Spot>)> {
        (1u32..6, 1u32..12).prop_flat_map(|(rows, seats_per_row)| {
            let spot = prop_oneof![
                3 => Just(Spot::Free),
                1 => Just(Spot::Taken),
                1 => Just(Spot::FreeOther),
            ];
            let seats = proptest::collection::vec(spot, (rows * seats_per_row) as usize);
            (Just(rows), Just(seats_per_row), seats)
        })
    }

    /// The seat `seat` of `row` by brute force; anything past an edge reads as taken.
    fn at(spots: &[Spot], seats_per_row: u32, row: u32, seat: i64) -> Spot {
        if seat < 0 || seat >= i64::from(seats_per_row) {
            return Spot::Taken;
        }
        spots[(row * seats_per_row) as usize + seat as usize]
    }

    fn is_free(spot: Spot) -> bool {
        spot != Spot::Taken
    }

    /// Every block of `count` Free seats, each with its score, by brute force.
    fn all_blocks(map: &(u32, u32, Vec<Spot>), count: u32) -> Vec<(bool, u32, u64, u32)> {
        let (rows, seats_per_row, spots) = map;
        let mut blocks = Vec::new();
        for row in 0..*rows {
            for start in 0..=seats_per_row.saturating_sub(count) {
                let s = i64::from(start);
                let c = i64::from(count);
                let seat = |n: i64| at(spots, *seats_per_row, row, n);
                if count > *seats_per_row || !(s..s + c).all(|n| seat(n) == Spot::Free) {
                    continue;
                }
                let left = is_free(seat(s - 1)) && !is_free(seat(s - 2));
                let right = is_free(seat(s + c)) && !is_free(seat(s + c + 1));
                let centre = off_centre(start, count, *seats_per_row);
                blocks.push((left || right, row, centre, start));
            }
        }
        blocks
    }

    /// The fewest pieces that can make `count` seats: the largest runs first.
    fn fewest_pieces(map: &(u32, u32, Vec<Spot>), count: u32) -> usize {
        let (rows, seats_per_row, spots) = map;
        let mut lens: Vec<u32> = spots
            .chunks(*seats_per_row as usize)
            .take(*rows as usize)
            .flat_map(|row| row.split(|s| *s != Spot::Free).map(|run| run.len() as u32))
            .filter(|len| *len > 0)
            .collect();
        lens.sort_unstable_by(|a, b| b.cmp(a));
        let mut total = 0;
        lens.iter()
            .take_while(|len| {
                let short = total < count;
                total += **len;
                short
            })
            .count()
    }

    /// How many maximal groups of adjacent indices `chosen` falls into.
    fn pieces(chosen: &[u32], seats_per_row: u32) -> usize {
        let joined = chosen
            .windows(2)
            .filter(|w| w[1] == w[0] + 1 && w[0] / seats_per_row == w[1] / seats_per_row);
        chosen.len() - joined.count()
    }

    /// The maximal groups of adjacent indices in `chosen`, as (row, start in row, length).
    fn groups(chosen: &[u32], seats_per_row: u32) -> Vec<(u32, u32, u32)> {
        let mut out: Vec<(u32, u32, u32)> = Vec::new();
        for &i in chosen {
            let (row, seat) = (i / seats_per_row, i % seats_per_row);
            match out.last_mut() {
                Some((r, s, len)) if *r == row && *s + *len == seat => *len += 1,
                _ => out.push((row, seat, 1)),
            }
        }
        out
    }

    /// The best start, by centre then leftmost, for `len` seats inside the run of Free seats
    /// that holds seat `start` of `row`, by brute force.
    fn best_start_in_run(map: &(u32, u32, Vec<Spot>), row: u32, start: u32, len: u32) -> u32 {
        let (_, seats_per_row, spots) = map;
        let free = |seat: u32| spots[(row * seats_per_row + seat) as usize] == Spot::Free;
        let first = (0..=start)
            .rev()
            .take_while(|&s| free(s))
            .last()
            .unwrap_or(start);
        let end = (start..*seats_per_row)
            .take_while(|&s| free(s))
            .last()
            .unwrap_or(start)
            + 1;
        (first..=end - len)
            .min_by_key(|&s| (off_centre(s, len, *seats_per_row), s))
            .unwrap_or(start)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn choice_obeys_the_rules(
            map in small_map(),
            count in 1u32..6,
            allowed in any::<bool>(),
        ) {
            let split = if allowed { Split::Allowed } else { Split::Never };
            let (rows, seats_per_row, spots) = &map;
            let got = choose(*rows, *seats_per_row, |i| spots[i as usize], count, split);
            let blocks = all_blocks(&map, count);
            let free = spots.iter().filter(|s| **s == Spot::Free).count();
            let expect_some = !blocks.is_empty() || (allowed && free >= count as usize);
            prop_assert_eq!(got.is_some(), expect_some);
            let Some(chosen) = got else { return Ok(()) };

            prop_assert_eq!(chosen.len(), count as usize);
            if !allowed {
                prop_assert_eq!(pieces(&chosen, *seats_per_row), 1, "not one block: {:?}", chosen);
            }
            prop_assert!(chosen.windows(2).all(|w| w[0] < w[1]), "not ascending: {:?}", chosen);
            for &i in &chosen {
                prop_assert!((i as usize) < spots.len());
                prop_assert_eq!(spots[i as usize], Spot::Free);
            }
            if let Some(best) = blocks.iter().min() {
                // A block exists: the chosen seats are the best one, whatever `split` says.
                let (_, row, _, start) = *best;
                let first = row * seats_per_row + start;
                prop_assert_eq!(&chosen, &(first..first + count).collect::<Vec<_>>());
                if blocks.iter().any(|b| !b.0) {
                    prop_assert!(!best.0, "stranded a seat though a choice strands none");
                }
            } else {
                prop_assert_eq!(pieces(&chosen, *seats_per_row), fewest_pieces(&map, count));
                for (row, start, len) in groups(&chosen, *seats_per_row) {
                    let best = best_start_in_run(&map, row, start, len);
                    prop_assert_eq!(start, best, "piece not centred in its run: {:?}", chosen);
                }
            }
        }
    }
}
