//! Telephony vocabulary shared by every service and provider: phone numbers as accepted on
//! import, normalised to E.164, and hangup causes (Q.850 values and names, and the SIP table
//! the simulator and SIP trunks report with), checked against `shared/vectors/`.

pub mod hangup;
pub mod phone;

pub use phone::PhoneNumber;
