//! Telephony vocabulary shared by every service and provider: phone numbers as accepted on
//! import, normalised to E.164, and hangup causes (Q.850 values and names, and the SIP table
//! the simulator and SIP trunks report with), checked against `shared/vectors/`.

pub mod hangup;
pub mod phone;
pub mod region;
pub mod tzmap;
pub mod window;
pub mod zone;

pub use phone::PhoneNumber;

/// A line id as tenants name their lines: 1-64 characters of `A-Z a-z 0-9 - _ .`.
pub fn valid_line_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}
