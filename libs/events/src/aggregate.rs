use uuid::Uuid;

/// An event-sourced aggregate: each has one stream id and one bus subject, so that
/// `Nats-Expected-Last-Subject-Sequence` guards the whole aggregate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Aggregate {
    Task(Uuid),
    Call(Uuid),
    /// A contact of a task, by its 1-based number within the task.
    Contact(Uuid, u32),
    /// A tenant, by the v5 UUID of its id ([`Aggregate::tenant`]); its events carry the id.
    Tenant(Uuid),
    /// One audit record, by its event id: each is its own stream, so recording one never
    /// contends with another.
    Audit(Uuid),
    /// A line (trunk) of a tenant, by the v5 UUID of tenant and line id ([`Aggregate::line`]);
    /// its events carry both.
    Line(Uuid),
    /// A work phone of a tenant, by the v5 UUID of tenant and device number
    /// ([`Aggregate::device`]).
    Device(Uuid),
    /// One follow-up written after a call, by its id: its own stream, like an audit record.
    FollowUp(Uuid),
    /// The analysis of a call's conversation, by the call's id.
    Analysis(Uuid),
    /// The stored recording of a call, by the call's id (the record service's).
    Recording(Uuid),
    /// A batch number screening job, by its id (or an operator's override of numbers'
    /// validity, by the override's id).
    Screening(Uuid),
    /// A provider campaign (seed 001): a batch of a task's calls handed to a provider, by its
    /// id.
    Campaign(Uuid),
}

/// Namespace of tenants' aggregate ids.
const TENANT_NAMESPACE: Uuid = Uuid::from_u128(0x7a3e_51c0_2b8d_4f19_a6e2_94d1_0c5b_3e77);

#[derive(Debug, thiserror::Error)]
#[error("not an aggregate stream id: {0:?}")]
pub struct AggregateParseError(pub String);

impl Aggregate {
    /// The aggregate of the tenant `tenant_id`.
    pub fn tenant(tenant_id: &str) -> Aggregate {
        Aggregate::Tenant(Uuid::new_v5(&TENANT_NAMESPACE, tenant_id.as_bytes()))
    }

    /// The aggregate of line `line_id` of tenant `tenant_id`.
    pub fn line(tenant_id: &str, line_id: &str) -> Aggregate {
        Aggregate::Line(Uuid::new_v5(
            &TENANT_NAMESPACE,
            format!("line\0{tenant_id}\0{line_id}").as_bytes(),
        ))
    }

    /// The aggregate of work phone `id` of tenant `tenant_id`.
    pub fn device(tenant_id: &str, id: u64) -> Aggregate {
        Aggregate::Device(Uuid::new_v5(
            &TENANT_NAMESPACE,
            format!("device\0{tenant_id}\0{id}").as_bytes(),
        ))
    }

    /// The id the aggregate is named by (a contact's task).
    pub fn id(&self) -> Uuid {
        match self {
            Aggregate::Task(id)
            | Aggregate::Call(id)
            | Aggregate::Contact(id, _)
            | Aggregate::Tenant(id)
            | Aggregate::Audit(id)
            | Aggregate::Line(id)
            | Aggregate::Device(id)
            | Aggregate::FollowUp(id)
            | Aggregate::Analysis(id)
            | Aggregate::Recording(id)
            | Aggregate::Screening(id)
            | Aggregate::Campaign(id) => *id,
        }
    }

    /// `task-<uuid>`, `call-<uuid>` or `contact-<task uuid>-<no>`.
    pub fn stream_id(&self) -> String {
        match self {
            Aggregate::Task(id) => format!("task-{id}"),
            Aggregate::Call(id) => format!("call-{id}"),
            Aggregate::Contact(task, no) => format!("contact-{task}-{no}"),
            Aggregate::Tenant(id) => format!("tenant-{id}"),
            Aggregate::Audit(id) => format!("audit-{id}"),
            Aggregate::Line(id) => format!("line-{id}"),
            Aggregate::Device(id) => format!("device-{id}"),
            Aggregate::FollowUp(id) => format!("followup-{id}"),
            Aggregate::Analysis(id) => format!("analysis-{id}"),
            Aggregate::Recording(id) => format!("recording-{id}"),
            Aggregate::Screening(id) => format!("screening-{id}"),
            Aggregate::Campaign(id) => format!("campaign-{id}"),
        }
    }

    /// The subject below the events root: `task.<uuid>`, `call.<uuid>`, `contact.<task>.<no>`.
    pub fn subject_suffix(&self) -> String {
        match self {
            Aggregate::Task(id) => format!("task.{id}"),
            Aggregate::Call(id) => format!("call.{id}"),
            Aggregate::Contact(task, no) => format!("contact.{task}.{no}"),
            Aggregate::Tenant(id) => format!("tenant.{id}"),
            Aggregate::Audit(id) => format!("audit.{id}"),
            Aggregate::Line(id) => format!("line.{id}"),
            Aggregate::Device(id) => format!("device.{id}"),
            Aggregate::FollowUp(id) => format!("followup.{id}"),
            Aggregate::Analysis(id) => format!("analysis.{id}"),
            Aggregate::Recording(id) => format!("recording.{id}"),
            Aggregate::Screening(id) => format!("screening.{id}"),
            Aggregate::Campaign(id) => format!("campaign.{id}"),
        }
    }

    pub fn parse_stream_id(s: &str) -> Result<Self, AggregateParseError> {
        let err = || AggregateParseError(s.to_string());
        if let Some(rest) = s.strip_prefix("task-") {
            return Uuid::parse_str(rest)
                .map(Aggregate::Task)
                .map_err(|_| err());
        }
        if let Some(rest) = s.strip_prefix("call-") {
            return Uuid::parse_str(rest)
                .map(Aggregate::Call)
                .map_err(|_| err());
        }
        if let Some(rest) = s.strip_prefix("audit-") {
            return Uuid::parse_str(rest)
                .map(Aggregate::Audit)
                .map_err(|_| err());
        }
        if let Some(rest) = s.strip_prefix("line-") {
            return Uuid::parse_str(rest)
                .map(Aggregate::Line)
                .map_err(|_| err());
        }
        if let Some(rest) = s.strip_prefix("device-") {
            return Uuid::parse_str(rest)
                .map(Aggregate::Device)
                .map_err(|_| err());
        }
        if let Some(rest) = s.strip_prefix("followup-") {
            return Uuid::parse_str(rest)
                .map(Aggregate::FollowUp)
                .map_err(|_| err());
        }
        if let Some(rest) = s.strip_prefix("analysis-") {
            return Uuid::parse_str(rest)
                .map(Aggregate::Analysis)
                .map_err(|_| err());
        }
        if let Some(rest) = s.strip_prefix("recording-") {
            return Uuid::parse_str(rest)
                .map(Aggregate::Recording)
                .map_err(|_| err());
        }
        if let Some(rest) = s.strip_prefix("screening-") {
            return Uuid::parse_str(rest)
                .map(Aggregate::Screening)
                .map_err(|_| err());
        }
        if let Some(rest) = s.strip_prefix("campaign-") {
            return Uuid::parse_str(rest)
                .map(Aggregate::Campaign)
                .map_err(|_| err());
        }
        if let Some(rest) = s.strip_prefix("tenant-") {
            return Uuid::parse_str(rest)
                .map(Aggregate::Tenant)
                .map_err(|_| err());
        }
        if let Some(rest) = s.strip_prefix("contact-") {
            // A UUID is 36 characters; the contact number follows its dash.
            if rest.len() > 37 && rest.as_bytes()[36] == b'-' {
                let task = Uuid::parse_str(&rest[..36]).map_err(|_| err())?;
                let no = rest[37..].parse().map_err(|_| err())?;
                return Ok(Aggregate::Contact(task, no));
            }
        }
        Err(err())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_ids_round_trip() {
        let t = Uuid::new_v4();
        for a in [
            Aggregate::Task(t),
            Aggregate::Call(t),
            Aggregate::Contact(t, 42),
            Aggregate::tenant("acme"),
            Aggregate::Audit(t),
            Aggregate::line("acme", "sim-1"),
            Aggregate::FollowUp(t),
            Aggregate::Analysis(t),
            Aggregate::Recording(t),
            Aggregate::Screening(t),
            Aggregate::Campaign(t),
        ] {
            assert_eq!(Aggregate::parse_stream_id(&a.stream_id()).ok(), Some(a));
        }
        assert!(Aggregate::parse_stream_id("contact-x-1").is_err());
        assert!(Aggregate::parse_stream_id("order-1").is_err());
    }
}
