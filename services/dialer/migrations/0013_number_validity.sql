-- Numbers screened invalid (seed 004, batch screening, followed from the provider adapter's
-- NumbersScreened and NumberValidityOverridden events): a later task's contact of one finishes
-- as INVALID_NUMBER when due, without a call. A number screened or marked valid again keeps its
-- row with invalid = false, so that its version still orders later changes (events of
-- different streams may arrive in any order: a change applies only over an older version).
CREATE TABLE IF NOT EXISTS dialer_invalid_numbers (
    tenant_id  text        NOT NULL,
    phone      text        NOT NULL,
    invalid    boolean     NOT NULL,
    version    bigint      NOT NULL,
    -- "screening:<id>" or "override".
    source     text        NOT NULL,
    since      timestamptz NOT NULL,
    PRIMARY KEY (phone, tenant_id)
);
