//! Human-friendly durations: `"500ms"`, `"30s"`, `"5m"`, `"1h"`, `"1d"`.

use std::time::Duration;

/// A duration string that could not be parsed.
///
/// ```
/// let err = t87s::parse_duration("10x").unwrap_err();
/// assert_eq!(
///     err.to_string(),
///     "invalid duration \"10x\"; expected a whole number followed by `ms`, `s`, `m`, `h` or `d`, like \"30s\""
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration {input:?}; expected a whole number followed by `ms`, `s`, `m`, `h` or `d`, like \"30s\"")]
pub struct DurationError {
    input: String,
}

impl DurationError {
    /// The text that failed to parse.
    ///
    /// ```
    /// assert_eq!(t87s::parse_duration("soon").unwrap_err().input(), "soon");
    /// ```
    pub fn input(&self) -> &str {
        &self.input
    }
}

/// Parses `"500ms"`, `"30s"`, `"5m"`, `"1h"` or `"1d"` into a [`Duration`].
///
/// The number is a whole, non-negative decimal; surrounding whitespace is ignored.
///
/// ```
/// use std::time::Duration;
/// assert_eq!(t87s::parse_duration("5m")?, Duration::from_secs(300));
/// assert_eq!(t87s::parse_duration("500ms")?, Duration::from_millis(500));
/// assert!(t87s::parse_duration("5 minutes").is_err());
/// # Ok::<(), t87s::DurationError>(())
/// ```
pub fn parse_duration(input: &str) -> Result<Duration, DurationError> {
    duration_from_str(input).ok_or_else(|| DurationError {
        input: input.to_owned(),
    })
}

/// The one parser behind [`parse_duration`] and the `ttl = "10m"` literals of
/// `#[cached]`, which are checked while compiling (it is a `const fn`).
pub(crate) const fn duration_from_str(input: &str) -> Option<Duration> {
    let bytes = input.as_bytes();
    let (mut start, mut end) = (0, bytes.len());
    while start < end && bytes[start].is_ascii_whitespace() {
        start += 1;
    }
    while end > start && bytes[end - 1].is_ascii_whitespace() {
        end -= 1;
    }
    let mut n: u64 = 0;
    let mut i = start;
    while i < end && bytes[i].is_ascii_digit() {
        n = match n.checked_mul(10) {
            Some(n) => match n.checked_add((bytes[i] - b'0') as u64) {
                Some(n) => n,
                None => return None,
            },
            None => return None,
        };
        i += 1;
    }
    if i == start {
        return None;
    }
    let unit_ms: u64 = match end - i {
        1 => match bytes[i] {
            b's' => 1_000,
            b'm' => 60_000,
            b'h' => 3_600_000,
            b'd' => 86_400_000,
            _ => return None,
        },
        2 if bytes[i] == b'm' && bytes[i + 1] == b's' => 1,
        _ => return None,
    };
    match n.checked_mul(unit_ms) {
        Some(ms) => Some(Duration::from_millis(ms)),
        None => None,
    }
}

/// A value that can be turned into a [`Duration`]: a `Duration` itself, or a
/// string such as `"30s"` (see [`parse_duration`]).
///
/// Builders take `impl IntoDuration`, so both spellings work wherever an option
/// accepts a duration, and a bad string is reported when the builder is built.
///
/// ```
/// use std::time::Duration;
/// use t87s::IntoDuration;
/// assert_eq!("1h".into_duration()?, Duration::from_secs(3600));
/// assert_eq!(Duration::from_secs(2).into_duration()?, Duration::from_secs(2));
/// # Ok::<(), t87s::DurationError>(())
/// ```
pub trait IntoDuration {
    /// Converts `self`, or says why it is not a duration.
    fn into_duration(self) -> Result<Duration, DurationError>;
}

impl IntoDuration for Duration {
    fn into_duration(self) -> Result<Duration, DurationError> {
        Ok(self)
    }
}

impl IntoDuration for &str {
    fn into_duration(self) -> Result<Duration, DurationError> {
        parse_duration(self)
    }
}

impl IntoDuration for String {
    fn into_duration(self) -> Result<Duration, DurationError> {
        parse_duration(&self)
    }
}

impl IntoDuration for &String {
    fn into_duration(self) -> Result<Duration, DurationError> {
        parse_duration(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_unit() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("1d"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_duration(" 0s "), Ok(Duration::ZERO));
    }

    #[test]
    fn rejects_malformed_input() {
        for bad in [
            "",
            "s",
            "10",
            "10x",
            "-5s",
            "1.5s",
            "5 m",
            "5M",
            "ms10",
            "99999999999999999999d",
        ] {
            let err = parse_duration(bad).expect_err(bad);
            assert_eq!(err.input(), bad);
        }
    }
}
