//! When a notification's next call may start: not before `not_before`, never inside quiet hours
//! (unless urgent). Local times are turned into instants by jiff with the notification's IANA time
//! zone, so a quiet night that spans a DST change is as long as the wall clock says, not 24 h
//! apart. The time zone is resolved by the shell (`jiff::tz::TimeZone::get` may read the system's
//! zoneinfo) and handed in.

use jiff::civil;
use jiff::tz::TimeZone;

use super::model::{NotificationRequest, QuietHours, Waiting};
use crate::call::Timestamp;

fn to_jiff(t: Timestamp) -> jiff::Timestamp {
    let ms = i64::try_from(t.0).unwrap_or(i64::MAX);
    jiff::Timestamp::from_millisecond(ms).unwrap_or(jiff::Timestamp::MAX)
}

fn from_jiff(t: jiff::Timestamp) -> Timestamp {
    Timestamp(u64::try_from(t.as_millisecond()).unwrap_or(0))
}

/// Whether local time-of-day `m` (minutes) lies in `[from, to)`, which spans midnight when
/// `from > to`.
fn inside(m: u16, q: &QuietHours) -> bool {
    let (from, to) = (q.from.minutes(), q.to.minutes());
    if from < to {
        (from..to).contains(&m)
    } else {
        m >= from || m < to
    }
}

/// The first instant at or after `now` outside the quiet hours `q` in `tz`: `now` itself when it
/// is not quiet. An end that falls into a DST gap moves forward with the clock (jiff's
/// "compatible" rule: 02:30 on a spring-forward night is 03:30).
pub fn quiet_end(now: Timestamp, q: &QuietHours, tz: &TimeZone) -> Timestamp {
    let zoned = to_jiff(now).to_zoned(tz.clone());
    let minutes = u16::try_from(zoned.hour()).unwrap_or(0) * 60 + u16::try_from(zoned.minute()).unwrap_or(0);
    if !inside(minutes, q) {
        return now;
    }
    let today = zoned.date();
    // Past `to` today (a quiet span across midnight, now in its evening part): it ends tomorrow.
    let end_day = if minutes >= q.to.minutes() {
        today.tomorrow().unwrap_or(today)
    } else {
        today
    };
    let end = civil::DateTime::from_parts(
        end_day,
        civil::Time::new(q.to.hour as i8, q.to.minute as i8, 0, 0).unwrap_or(civil::Time::midnight()),
    );
    match end.to_zoned(tz.clone()) {
        Ok(z) => from_jiff(z.timestamp()).max(now),
        Err(_) => now,
    }
}

/// When the next call of `req` may start, at or after `now`, and what it waits for (`None`: it
/// may start now). `tz` is the quiet hours' zone (UTC when the shell could not resolve it).
pub fn earliest_start(
    now: Timestamp,
    req: &NotificationRequest,
    tz: &TimeZone,
) -> (Timestamp, Option<Waiting>) {
    let mut at = now;
    let mut why = None;
    if let Some(nb) = req.not_before {
        if nb > at {
            at = nb;
            why = Some(Waiting::NotBefore);
        }
    }
    if let (Some(q), false) = (&req.quiet_hours, req.urgent) {
        let end = quiet_end(at, q, tz);
        if end > at {
            at = end;
            why = Some(Waiting::QuietHours);
        }
    }
    (at, why)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::model::LocalTime;

    fn berlin() -> TimeZone {
        TimeZone::get("Europe/Berlin").expect("bundled zone")
    }

    fn utc(text: &str) -> Timestamp {
        let t: jiff::Timestamp = text.parse().expect("RFC 3339");
        from_jiff(t)
    }

    fn night() -> QuietHours {
        QuietHours {
            from: LocalTime { hour: 22, minute: 0 },
            to: LocalTime { hour: 7, minute: 0 },
            timezone: "Europe/Berlin".into(),
        }
    }

    #[test]
    fn outside_quiet_hours_is_now() {
        let t = utc("2026-06-10T10:00:00Z"); // 12:00 in Berlin
        assert_eq!(quiet_end(t, &night(), &berlin()), t);
        let t = utc("2026-06-10T19:59:59Z"); // 21:59:59
        assert_eq!(quiet_end(t, &night(), &berlin()), t);
    }

    #[test]
    fn a_quiet_night_ends_at_seven_local_time() {
        // 23:30 CEST → 07:00 CEST next day (05:00 UTC).
        let t = utc("2026-06-10T21:30:00Z");
        assert_eq!(quiet_end(t, &night(), &berlin()), utc("2026-06-11T05:00:00Z"));
        // 03:00 CEST: the same morning.
        let t = utc("2026-06-11T01:00:00Z");
        assert_eq!(quiet_end(t, &night(), &berlin()), utc("2026-06-11T05:00:00Z"));
        // 22:00 sharp is quiet, 07:00 sharp is not.
        assert_eq!(
            quiet_end(utc("2026-06-10T20:00:00Z"), &night(), &berlin()),
            utc("2026-06-11T05:00:00Z")
        );
        let seven = utc("2026-06-11T05:00:00Z");
        assert_eq!(quiet_end(seven, &night(), &berlin()), seven);
    }

    #[test]
    fn a_quiet_night_across_the_spring_change_is_an_hour_shorter() {
        // 2026-03-29 02:00 CET → 03:00 CEST. At 23:00 CET (22:00 UTC) on the 28th the night ends
        // at 07:00 CEST = 05:00 UTC: 7 hours later, not 8.
        let t = utc("2026-03-28T22:00:00Z");
        let end = quiet_end(t, &night(), &berlin());
        assert_eq!(end, utc("2026-03-29T05:00:00Z"));
        assert_eq!(end.millis_since(t), 7 * 3_600_000);
    }

    #[test]
    fn a_quiet_night_across_the_autumn_change_is_an_hour_longer() {
        // 2026-10-25 03:00 CEST → 02:00 CET. 23:00 CEST on the 24th (21:00 UTC) → 07:00 CET = 06:00 UTC.
        let t = utc("2026-10-24T21:00:00Z");
        let end = quiet_end(t, &night(), &berlin());
        assert_eq!(end, utc("2026-10-25T06:00:00Z"));
        assert_eq!(end.millis_since(t), 9 * 3_600_000);
        // In the repeated hour (02:30 CET, the second time) it is still quiet.
        let t = utc("2026-10-25T01:30:00Z");
        assert_eq!(quiet_end(t, &night(), &berlin()), utc("2026-10-25T06:00:00Z"));
    }

    #[test]
    fn an_end_inside_the_spring_gap_moves_forward_with_the_clock() {
        let q = QuietHours {
            from: LocalTime { hour: 1, minute: 0 },
            to: LocalTime { hour: 2, minute: 30 },
            timezone: "Europe/Berlin".into(),
        };
        // 01:15 CET (00:15 UTC) on the change day: 02:30 does not exist; it ends at 03:30 CEST.
        let t = utc("2026-03-29T00:15:00Z");
        assert_eq!(quiet_end(t, &q, &berlin()), utc("2026-03-29T01:30:00Z"));
    }

    #[test]
    fn daytime_quiet_hours_do_not_span_midnight() {
        let q = QuietHours {
            from: LocalTime { hour: 12, minute: 0 },
            to: LocalTime { hour: 13, minute: 30 },
            timezone: "America/New_York".into(),
        };
        let ny = TimeZone::get("America/New_York").expect("zone");
        // 12:10 EST (17:10 UTC) → 13:30 EST.
        assert_eq!(
            quiet_end(utc("2026-01-15T17:10:00Z"), &q, &ny),
            utc("2026-01-15T18:30:00Z")
        );
        // 23:00 EST is not quiet.
        let late = utc("2026-01-16T04:00:00Z");
        assert_eq!(quiet_end(late, &q, &ny), late);
    }

    #[test]
    fn not_before_then_quiet_hours_then_urgent() {
        let mut req = crate::notify::tests::request(&["1001"]);
        let tz = berlin();
        let now = utc("2026-06-10T10:00:00Z");
        assert_eq!(earliest_start(now, &req, &tz), (now, None));
        req.not_before = Some(utc("2026-06-10T12:00:00Z"));
        assert_eq!(
            earliest_start(now, &req, &tz),
            (utc("2026-06-10T12:00:00Z"), Some(Waiting::NotBefore))
        );
        // not_before lands inside quiet hours: the quiet hours' end wins.
        req.not_before = Some(utc("2026-06-10T21:00:00Z"));
        req.quiet_hours = Some(night());
        assert_eq!(
            earliest_start(now, &req, &tz),
            (utc("2026-06-11T05:00:00Z"), Some(Waiting::QuietHours))
        );
        req.urgent = true;
        assert_eq!(
            earliest_start(now, &req, &tz),
            (utc("2026-06-10T21:00:00Z"), Some(Waiting::NotBefore))
        );
    }
}
