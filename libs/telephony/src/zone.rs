//! IANA time zones as the platform names them: a line's day, a task's calling windows, a
//! tenant's day.

pub use chrono_tz::Tz;

/// The zone used when none is named.
pub const DEFAULT: &str = "Asia/Shanghai";

/// The zone named `name` (empty = [`DEFAULT`]), or why not.
pub fn parse(name: &str) -> Result<Tz, String> {
    let name = if name.is_empty() { DEFAULT } else { name };
    name.parse::<Tz>().map_err(|_| {
        format!(
            "{:?} is not an IANA time zone (e.g. Asia/Shanghai, America/New_York)",
            name.chars().take(64).collect::<String>()
        )
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn zones_are_iana_names_and_empty_is_shanghai() {
        assert_eq!(super::parse("").map(|z| z.name()), Ok("Asia/Shanghai"));
        assert!(super::parse("Europe/Berlin").is_ok());
        assert!(super::parse("Mars/Olympus").is_err());
        assert!(super::parse("CST+8").is_err());
    }
}
