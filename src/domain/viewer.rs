//! What a person looking at seats may see of them. The rule: a seat's holder (their name and
//! booking) is shown only to the holder and to admins; everyone else sees only that it is
//! taken. The API's seat maps and watch streams only translate what [`Viewer::sees`] decides.

use super::state::{BookingStatus, EventRecord, State};

/// Who may be told who reserved a seat, in words (for `event info` and help): the rule
/// [`Viewer::may_see_holder`] applies.
pub const HOLDERS_SHOWN_TO: &str = "the holder and admins";

/// Who is looking at seats.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Viewer {
    user: Option<String>,
    is_admin: bool,
}

/// A seat's state as a viewer sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeatState {
    Free,
    /// Reserved by the viewer.
    Mine,
    /// Reserved by someone else.
    Taken,
    /// Held in checkout by someone else.
    Held,
    /// Held in checkout by the viewer.
    HeldByYou,
}

/// Who reserved a seat, and in which booking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Holder<'a> {
    pub user: &'a str,
    pub booking: u64,
    /// Set when the seat is held, not reserved: when the hold runs out (log time).
    pub hold_expires_at_ms: Option<u64>,
}

/// One seat as one viewer may see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeatSeen<'a> {
    pub state: SeatState,
    /// Only when the viewer reserved the seat or is an admin.
    pub holder: Option<Holder<'a>>,
}

impl Viewer {
    /// `user` (None: nobody logged in) as `state` knows them.
    pub fn new(state: &State, user: Option<String>) -> Viewer {
        let is_admin = state.is_admin(user.as_deref());
        Viewer::of(user, is_admin)
    }

    pub fn of(user: Option<String>, is_admin: bool) -> Viewer {
        Viewer { user, is_admin }
    }

    /// Whether the viewer may be told that `holder` reserved a seat: [`HOLDERS_SHOWN_TO`].
    pub fn may_see_holder(&self, holder: &str) -> bool {
        self.is_admin || self.user.as_deref() == Some(holder)
    }

    /// A seat reserved by `holder` (booking number and user, as `State::holder` gives them), or
    /// free, as this viewer sees it.
    pub fn sees<'a>(&self, holder: Option<(u64, &'a str)>) -> SeatSeen<'a> {
        let Some((booking, user)) = holder else {
            return SeatSeen {
                state: SeatState::Free,
                holder: None,
            };
        };
        let state = if self.user.as_deref() == Some(user) {
            SeatState::Mine
        } else {
            SeatState::Taken
        };
        SeatSeen {
            state,
            holder: self.may_see_holder(user).then_some(Holder {
                user,
                booking,
                hold_expires_at_ms: None,
            }),
        }
    }

    /// Seat `seat` of `event` as this viewer sees it.
    pub fn seat<'a>(&self, state: &'a State, event: &EventRecord, seat: u32) -> SeatSeen<'a> {
        let Some((booking, user, status)) = state.seat_holder(event, seat) else {
            return self.sees(None);
        };
        let mut seen = self.sees(Some((booking, user)));
        if let BookingStatus::Held { expires_at_ms, .. } = status {
            seen.state = match seen.state {
                SeatState::Mine => SeatState::HeldByYou,
                _ => SeatState::Held,
            };
            if let Some(holder) = &mut seen.holder {
                holder.hold_expires_at_ms = Some(expires_at_ms);
            }
        }
        seen
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_holder_is_shown_only_to_the_holder_and_to_admins() {
        let held = Some((7, "ann"));
        let ann = Viewer::of(Some("ann".into()), false);
        let bob = Viewer::of(Some("bob".into()), false);
        let nobody = Viewer::of(None, false);
        let admin = Viewer::of(Some("root".into()), true);
        let shown = Some(Holder {
            user: "ann",
            booking: 7,
            hold_expires_at_ms: None,
        });

        assert_eq!(
            ann.sees(held),
            SeatSeen {
                state: SeatState::Mine,
                holder: shown
            }
        );
        for stranger in [&bob, &nobody] {
            assert_eq!(
                stranger.sees(held),
                SeatSeen {
                    state: SeatState::Taken,
                    holder: None
                }
            );
        }
        assert_eq!(
            admin.sees(held),
            SeatSeen {
                state: SeatState::Taken,
                holder: shown
            }
        );
        for viewer in [&ann, &bob, &nobody, &admin] {
            assert_eq!(
                viewer.sees(None),
                SeatSeen {
                    state: SeatState::Free,
                    holder: None
                }
            );
        }
        assert!(ann.may_see_holder("ann") && admin.may_see_holder("ann"));
        assert!(!bob.may_see_holder("ann") && !nobody.may_see_holder("ann"));
    }
}
