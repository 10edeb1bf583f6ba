//! The `[analysis]` settings: which analyzer each tenant's calls go to, how failures are
//! retried, and the two network backends (`[analysis.llm]`, `[analysis.asr]`).

use std::{collections::BTreeMap, time::Duration};

use waihu_runtime::{
    config::{Layers, Secret},
    CommonConfig, ConfigError,
};

/// Which analyzer reads a transcript.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice {
    /// `waihu-analyzer`: rules, lexicons and a small model, on this machine.
    Local,
    /// An OpenAI-compatible chat endpoint answering in a JSON schema (`[analysis.llm]`).
    Llm,
}

impl Choice {
    pub fn name(self) -> &'static str {
        match self {
            Choice::Local => "local",
            Choice::Llm => "llm",
        }
    }

    pub fn parse(s: &str) -> Option<Choice> {
        match s.trim() {
            "local" => Some(Choice::Local),
            "llm" => Some(Choice::Llm),
            _ => None,
        }
    }
}

/// An OpenAI-compatible HTTP backend: base URL (ending in `/v1` for OpenAI itself), key, model.
#[derive(Debug, Clone)]
pub struct Backend {
    pub base_url: String,
    pub api_key: Secret,
    pub model: String,
    pub timeout: Duration,
}

impl Backend {
    /// `base_url` joined with `path` (`chat/completions`, `audio/transcriptions`).
    pub fn url(&self, path: &str) -> String {
        format!("{}/{path}", self.base_url.trim_end_matches('/'))
    }
}

#[derive(Debug, Clone)]
pub struct AnalysisConfig {
    pub common: CommonConfig,
    /// The analyzer of tenants `by_tenant` does not name.
    pub analyzer: Choice,
    pub by_tenant: BTreeMap<String, Choice>,
    /// Attempts at one analysis (transcription included) before it is given up (AnalysisFailed
    /// with `gave_up`); each failed attempt is an AnalysisFailed too.
    pub max_attempts: u32,
    /// Wait after the first failed attempt; doubles with each, capped at `retry_cap`.
    pub retry_base: Duration,
    pub retry_cap: Duration,
    /// Analyses (network calls) in flight at once.
    pub concurrency: usize,
    /// How long a stored recording waits for the provider's own transcript before the ASR
    /// backend is asked for one.
    pub asr_grace: Duration,
    /// How often the worker looks for due analyses when nothing woke it.
    pub poll: Duration,
    /// The chat analyzer (`[analysis.llm]`); None when its `base_url` is empty.
    pub llm: Option<Backend>,
    /// The transcription backend (`[analysis.asr]`); None when its `base_url` is empty.
    pub asr: Option<Backend>,
    /// `[analysis.asr] language`: an ISO-639-1 hint for the ASR backend ("" = let it detect).
    pub asr_language: String,
    /// `[analysis.asr] max_mb`: recordings larger than this are not sent (OpenAI's limit is 25).
    pub asr_max_bytes: u64,
    /// Where the record service keeps recordings (`[recordings]`): the ASR backend's audio.
    pub recordings: waihu_record::recording::RecordingConfig,
}

impl AnalysisConfig {
    pub const DEFAULT_PORT: u16 = 50055;

    /// The defaults around `common`: the local analyzer for everyone, no network backend.
    pub fn new(common: CommonConfig) -> Self {
        AnalysisConfig {
            common,
            analyzer: Choice::Local,
            by_tenant: BTreeMap::new(),
            max_attempts: 5,
            retry_base: Duration::from_secs(2),
            retry_cap: Duration::from_secs(300),
            concurrency: 8,
            asr_grace: Duration::from_secs(10),
            poll: Duration::from_millis(500),
            llm: None,
            asr: None,
            asr_language: String::new(),
            asr_max_bytes: 25 * 1024 * 1024,
            recordings: Default::default(),
        }
    }

    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_layers(&Layers::from_process()?)
    }

    pub fn from_layers(layers: &Layers) -> Result<Self, ConfigError> {
        let common = CommonConfig::from_layers(layers, Self::DEFAULT_PORT)?;
        let s: Section = layers.section("analysis")?;
        let d = AnalysisConfig::new(common);
        let analyzer = Choice::parse(&s.analyzer).ok_or_else(|| {
            ConfigError::invalid(
                "analysis.analyzer",
                format!("{:?} is not local or llm", s.analyzer),
            )
        })?;
        let by_tenant = parse_by_tenant(&s.by_tenant)
            .map_err(|e| ConfigError::invalid("analysis.by_tenant", e))?;
        if s.max_attempts == 0 || s.max_attempts > 100 {
            return Err(ConfigError::invalid(
                "analysis.max_attempts",
                "must be 1 to 100",
            ));
        }
        if s.retry_base_ms == 0 || s.retry_cap_s == 0 {
            return Err(ConfigError::invalid(
                "analysis.retry_base_ms",
                "retry_base_ms and retry_cap_s must be at least 1",
            ));
        }
        if s.concurrency == 0 || s.concurrency > 256 {
            return Err(ConfigError::invalid(
                "analysis.concurrency",
                "must be 1 to 256",
            ));
        }
        if s.poll_ms == 0 {
            return Err(ConfigError::invalid(
                "analysis.poll_ms",
                "must be at least 1",
            ));
        }
        let llm = backend("analysis.llm", s.llm, "gpt-4o-mini")?;
        let asr_language = s.asr.language.trim().to_string();
        let iso639 =
            asr_language.len() == 2 && asr_language.chars().all(|c| c.is_ascii_lowercase());
        if !asr_language.is_empty() && !iso639 {
            return Err(ConfigError::invalid(
                "analysis.asr.language",
                "an ISO-639-1 code such as zh or en, or empty",
            ));
        }
        if s.asr.max_mb == 0 || s.asr.max_mb > 1024 {
            return Err(ConfigError::invalid(
                "analysis.asr.max_mb",
                "must be 1 to 1024",
            ));
        }
        let asr_max_bytes = s.asr.max_mb * 1024 * 1024;
        let asr = backend(
            "analysis.asr",
            BackendSection {
                base_url: s.asr.base_url,
                api_key: s.asr.api_key,
                model: s.asr.model,
                timeout_s: s.asr.timeout_s,
            },
            "whisper-1",
        )?;
        let uses_llm = analyzer == Choice::Llm || by_tenant.values().any(|c| *c == Choice::Llm);
        if uses_llm && llm.is_none() {
            return Err(ConfigError::invalid(
                "analysis.llm.base_url",
                "must be set when analysis.analyzer or analysis.by_tenant chooses llm",
            ));
        }
        Ok(AnalysisConfig {
            analyzer,
            by_tenant,
            max_attempts: s.max_attempts,
            retry_base: Duration::from_millis(s.retry_base_ms),
            retry_cap: Duration::from_secs(s.retry_cap_s),
            concurrency: s.concurrency,
            asr_grace: Duration::from_secs(s.asr_grace_s),
            poll: Duration::from_millis(s.poll_ms),
            llm,
            asr,
            asr_language,
            asr_max_bytes,
            recordings: waihu_record::recording::RecordingConfig::from_layers(layers)?,
            ..d
        })
    }

    /// The analyzer of `tenant`'s calls.
    pub fn choice_of(&self, tenant: &str) -> Choice {
        self.by_tenant.get(tenant).copied().unwrap_or(self.analyzer)
    }

    /// The wait after the `attempts`-th failed attempt.
    pub fn backoff(&self, attempts: u32) -> Duration {
        let factor = 1u32 << attempts.saturating_sub(1).min(16);
        self.retry_base.saturating_mul(factor).min(self.retry_cap)
    }
}

/// `tenant=llm,other=local`.
fn parse_by_tenant(s: &str) -> Result<BTreeMap<String, Choice>, String> {
    waihu_runtime::config::per_tenant(s, "tenant=local or tenant=llm", |v| {
        Choice::parse(v).ok_or_else(|| format!("{v:?} is not local or llm"))
    })
}

fn backend(key: &str, s: BackendSection, model: &str) -> Result<Option<Backend>, ConfigError> {
    let base = s.base_url.trim();
    if base.is_empty() {
        return Ok(None);
    }
    let url = url::Url::parse(base)
        .map_err(|e| ConfigError::invalid(&format!("{key}.base_url"), format!("{base:?}: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(ConfigError::invalid(
            &format!("{key}.base_url"),
            "must be an http or https URL",
        ));
    }
    if s.timeout_s == 0 || s.timeout_s > 3600 {
        return Err(ConfigError::invalid(
            &format!("{key}.timeout_s"),
            "must be 1 to 3600",
        ));
    }
    let model = match s.model.trim() {
        "" => model.to_string(),
        m => m.to_string(),
    };
    Ok(Some(Backend {
        base_url: base.trim_end_matches('/').to_string(),
        api_key: s.api_key,
        model,
        timeout: Duration::from_secs(s.timeout_s),
    }))
}

/// The `[analysis]` settings as written.
#[derive(serde::Deserialize)]
#[serde(default)]
struct Section {
    analyzer: String,
    by_tenant: String,
    max_attempts: u32,
    retry_base_ms: u64,
    retry_cap_s: u64,
    concurrency: usize,
    asr_grace_s: u64,
    poll_ms: u64,
    llm: BackendSection,
    asr: AsrSection,
}

impl Default for Section {
    fn default() -> Self {
        Section {
            analyzer: "local".into(),
            by_tenant: String::new(),
            max_attempts: 5,
            retry_base_ms: 2000,
            retry_cap_s: 300,
            concurrency: 8,
            asr_grace_s: 10,
            poll_ms: 500,
            llm: BackendSection::default(),
            asr: AsrSection::default(),
        }
    }
}

#[derive(serde::Deserialize)]
#[serde(default)]
struct BackendSection {
    base_url: String,
    api_key: Secret,
    model: String,
    timeout_s: u64,
}

impl Default for BackendSection {
    fn default() -> Self {
        BackendSection {
            base_url: String::new(),
            api_key: Secret::default(),
            model: String::new(),
            timeout_s: 60,
        }
    }
}

#[derive(serde::Deserialize)]
#[serde(default)]
struct AsrSection {
    base_url: String,
    api_key: Secret,
    model: String,
    timeout_s: u64,
    language: String,
    max_mb: u64,
}

impl Default for AsrSection {
    fn default() -> Self {
        AsrSection {
            base_url: String::new(),
            api_key: Secret::default(),
            model: String::new(),
            timeout_s: 300,
            language: String::new(),
            max_mb: 25,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layers(vars: &[(&str, &str)]) -> Layers {
        Layers::from_vars(
            vars.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .chain([
                    ("NATS_URL".to_string(), "nats://127.0.0.1:4222".to_string()),
                    (
                        "DATABASE_URL".to_string(),
                        "postgres://postgres@127.0.0.1/waihu".to_string(),
                    ),
                ]),
        )
        .expect("layers")
    }

    #[test]
    fn defaults_are_local_with_no_backend() {
        let c = AnalysisConfig::from_layers(&layers(&[])).expect("config");
        assert_eq!(c.analyzer, Choice::Local);
        assert!(c.llm.is_none() && c.asr.is_none());
        assert_eq!(c.max_attempts, 5);
        assert_eq!(c.backoff(1), Duration::from_secs(2));
        assert_eq!(c.backoff(3), Duration::from_secs(8));
        assert_eq!(c.backoff(40), Duration::from_secs(300));
    }

    #[test]
    fn tenants_choose_and_llm_needs_its_endpoint() {
        let e = AnalysisConfig::from_layers(&layers(&[("WAIHU_ANALYSIS__BY_TENANT", "acme=llm")]))
            .expect_err("llm without base_url");
        assert!(e.to_string().contains("analysis.llm.base_url"), "{e}");
        let c = AnalysisConfig::from_layers(&layers(&[
            ("WAIHU_ANALYSIS__BY_TENANT", "acme=llm, beta=local"),
            ("WAIHU_ANALYSIS__LLM__BASE_URL", "http://127.0.0.1:9/v1/"),
            ("WAIHU_ANALYSIS__ASR__BASE_URL", "https://asr.example/v1"),
            ("WAIHU_ANALYSIS__ASR__LANGUAGE", "zh"),
        ]))
        .expect("config");
        assert_eq!(c.choice_of("acme"), Choice::Llm);
        assert_eq!(c.choice_of("beta"), Choice::Local);
        assert_eq!(c.choice_of("other"), Choice::Local);
        let llm = c.llm.expect("llm");
        assert_eq!(
            llm.url("chat/completions"),
            "http://127.0.0.1:9/v1/chat/completions"
        );
        assert_eq!(llm.model, "gpt-4o-mini");
        let asr = c.asr.expect("asr");
        assert_eq!(asr.model, "whisper-1");
        assert_eq!(asr.timeout, Duration::from_secs(300));
        assert_eq!(c.asr_language, "zh");
    }

    #[test]
    fn bad_settings_name_their_key() {
        for (var, value, key) in [
            ("WAIHU_ANALYSIS__ANALYZER", "gpt", "analysis.analyzer"),
            ("WAIHU_ANALYSIS__BY_TENANT", "acme", "analysis.by_tenant"),
            ("WAIHU_ANALYSIS__MAX_ATTEMPTS", "0", "analysis.max_attempts"),
            (
                "WAIHU_ANALYSIS__LLM__BASE_URL",
                "ftp://x",
                "analysis.llm.base_url",
            ),
            (
                "WAIHU_ANALYSIS__ASR__LANGUAGE",
                "chinese",
                "analysis.asr.language",
            ),
        ] {
            let e = AnalysisConfig::from_layers(&layers(&[(var, value)])).expect_err("refused");
            assert!(e.to_string().contains(key), "{var}={value}: {e}");
        }
    }
}
