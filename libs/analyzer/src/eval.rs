//! Scores the analyzer on a labelled set (`tests/data/analysis/*.jsonl`): intent macro-F1 and
//! accuracy, sentiment accuracy, and the confusion of intents.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::{Analysis, Analyzer, Intent, Sentiment};

/// One labelled transcript.
#[derive(Debug, Clone, Deserialize)]
pub struct Labelled {
    pub id: String,
    #[serde(default)]
    pub language: String,
    #[serde(default)]
    pub domain: String,
    pub intent: String,
    pub sentiment: String,
    pub split: String,
    pub transcript: String,
}

/// The committed labelled sets (`tests/data/analysis/`), compiled in: Chinese, then English.
const SETS: [(&str, &str); 2] = [
    (
        "zh.jsonl",
        include_str!("../../../tests/data/analysis/zh.jsonl"),
    ),
    (
        "en.jsonl",
        include_str!("../../../tests/data/analysis/en.jsonl"),
    ),
];

/// Every transcript of the committed labelled sets (both parts).
pub fn sets() -> Result<Vec<Labelled>, String> {
    let mut out = Vec::new();
    for (name, text) in SETS {
        out.extend(parse(text).map_err(|e| format!("{name}: {e}"))?);
    }
    Ok(out)
}

/// Reads the labelled lines of a JSON-lines text; a line that does not parse is an error
/// naming it.
pub fn parse(text: &str) -> Result<Vec<Labelled>, String> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| serde_json::from_str(l).map_err(|e| format!("line {}: {e}", i + 1)))
        .collect()
}

#[derive(Debug, Default)]
pub struct Report {
    pub n: usize,
    pub intent_accuracy: f64,
    pub intent_macro_f1: f64,
    pub sentiment_accuracy: f64,
    /// (wanted, got) -> count.
    pub confusion: BTreeMap<(String, String), usize>,
    /// Ids whose intent or sentiment was missed: (id, wanted, got).
    pub misses: Vec<(String, String, String)>,
}

pub fn evaluate(analyzer: &Analyzer, items: &[&Labelled]) -> Report {
    evaluate_with(items, |_, it| analyzer.analyze(&it.transcript))
}

/// Scores `items`, the `i`th analysed by `analyze(i, item)` (cross-validation: each item by an
/// analyzer that did not train on it).
pub fn evaluate_with(
    items: &[&Labelled],
    analyze: impl Fn(usize, &Labelled) -> Analysis,
) -> Report {
    let mut r = Report {
        n: items.len(),
        ..Default::default()
    };
    if items.is_empty() {
        return r;
    }
    let (mut intents_right, mut sentiments_right) = (0usize, 0usize);
    for (i, it) in items.iter().enumerate() {
        let a = analyze(i, it);
        let got = a.intent.name().to_string();
        if got == it.intent {
            intents_right += 1;
        }
        if a.sentiment.name() == it.sentiment {
            sentiments_right += 1;
        }
        if got != it.intent || a.sentiment.name() != it.sentiment {
            r.misses.push((
                it.id.clone(),
                format!("{}/{}", it.intent, it.sentiment),
                format!("{}/{}", got, a.sentiment.name()),
            ));
        }
        *r.confusion.entry((it.intent.clone(), got)).or_default() += 1;
    }
    r.intent_accuracy = intents_right as f64 / items.len() as f64;
    r.sentiment_accuracy = sentiments_right as f64 / items.len() as f64;
    let mut f1s = Vec::new();
    for i in Intent::ALL {
        let name = i.name().to_string();
        let tp = *r.confusion.get(&(name.clone(), name.clone())).unwrap_or(&0) as f64;
        let predicted: usize = r
            .confusion
            .iter()
            .filter(|((_, g), _)| *g == name)
            .map(|(_, n)| n)
            .sum();
        let actual: usize = r
            .confusion
            .iter()
            .filter(|((w, _), _)| *w == name)
            .map(|(_, n)| n)
            .sum();
        if actual == 0 && predicted == 0 {
            continue;
        }
        let p = if predicted == 0 {
            0.0
        } else {
            tp / predicted as f64
        };
        let rc = if actual == 0 { 0.0 } else { tp / actual as f64 };
        f1s.push(if p + rc == 0.0 {
            0.0
        } else {
            2.0 * p * rc / (p + rc)
        });
    }
    r.intent_macro_f1 = f1s.iter().sum::<f64>() / f1s.len().max(1) as f64;
    r
}

/// Sentiment names the set may use.
pub fn valid(l: &Labelled) -> bool {
    Intent::parse(&l.intent).is_some() && Sentiment::parse(&l.sentiment).is_some()
}
