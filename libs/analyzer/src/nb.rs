//! A small naive Bayes model over the customer's words (Chinese characters and character
//! pairs, English words and word pairs), trained when the analyzer is built on the *tune* part
//! of the committed labelled sets (`tests/data/analysis/*.jsonl`; the held-out part is never
//! read here). The rules decide; the model breaks their ties: it picks between the rules' two
//! best intents when they are close, and decides when no cue matched.

use std::collections::HashMap;

use crate::{eval, turns, Intent, Speaker};

pub struct Model {
    /// Per label: log prior, and log probability of each token (with the unseen one).
    classes: Vec<(String, f64, HashMap<String, f64>, f64)>,
}

/// The tokens of a customer's words.
pub fn tokens(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let lower = text.to_lowercase();
    let han: Vec<char> = lower.chars().filter(|c| crate::is_han(*c)).collect();
    for (i, c) in han.iter().enumerate() {
        out.push(c.to_string());
        if let Some(n) = han.get(i + 1) {
            out.push(format!("{c}{n}"));
        }
    }
    let words: Vec<&str> = lower
        .split(|c: char| !c.is_ascii_alphanumeric() && c != '\'')
        .filter(|w| !w.is_empty() && w.is_ascii())
        .collect();
    for (i, w) in words.iter().enumerate() {
        out.push(w.to_string());
        if let Some(n) = words.get(i + 1) {
            out.push(format!("{w} {n}"));
        }
    }
    out
}

/// The customer's words of a transcript.
pub fn customer_text(transcript: &str) -> String {
    turns::turns(transcript)
        .into_iter()
        .filter(|t| t.speaker == Speaker::Customer)
        .map(|t| t.text)
        .collect::<Vec<_>>()
        .join("\n")
}

impl Model {
    /// The intent model.
    pub fn intents() -> Model {
        Model::train(|l| Intent::parse(&l.intent).map(|i| i.name().to_string()))
    }

    /// The intent model trained on `items` only (cross-validation within the tune part).
    pub fn intents_from(items: &[&eval::Labelled]) -> Model {
        Model::train_on(items, |l| {
            Intent::parse(&l.intent).map(|i| i.name().to_string())
        })
    }

    /// Trained on the tune part of the committed sets (empty when they do not parse), each
    /// transcript labelled by `label`.
    fn train(label: impl Fn(&eval::Labelled) -> Option<String>) -> Model {
        let items: Vec<eval::Labelled> = eval::sets()
            .unwrap_or_default()
            .into_iter()
            .filter(|l| l.split == "tune")
            .collect();
        let refs: Vec<&eval::Labelled> = items.iter().collect();
        Model::train_on(&refs, label)
    }

    /// Trained on `items`, each transcript labelled by `label`.
    pub fn train_on(
        items: &[&eval::Labelled],
        label: impl Fn(&eval::Labelled) -> Option<String>,
    ) -> Model {
        let mut counts: HashMap<String, (usize, HashMap<String, f64>, f64)> = HashMap::new();
        let mut vocabulary: std::collections::HashSet<String> = Default::default();
        for it in items {
            let Some(name) = label(it) else {
                continue;
            };
            let entry = counts.entry(name).or_default();
            entry.0 += 1;
            for t in tokens(&customer_text(&it.transcript)) {
                entry.2 += 1.0;
                vocabulary.insert(t.clone());
                *entry.1.entry(t).or_default() += 1.0;
            }
        }
        let total: usize = counts.values().map(|c| c.0).sum();
        let v = vocabulary.len().max(1) as f64;
        let classes = counts
            .into_iter()
            .map(|(name, (n, words, all))| {
                let denom = all + v;
                let logs = words
                    .into_iter()
                    .map(|(w, c)| (w, ((c + 1.0) / denom).ln()))
                    .collect();
                (
                    name,
                    (n as f64 / total.max(1) as f64).ln(),
                    logs,
                    (1.0 / denom).ln(),
                )
            })
            .collect();
        Model { classes }
    }

    /// The log-likelihood of `text` under each of `among`.
    pub fn score(&self, text: &str, among: &[&str]) -> Vec<(String, f64)> {
        let toks = tokens(text);
        self.classes
            .iter()
            .filter(|(l, ..)| among.contains(&l.as_str()))
            .map(|(l, prior, logs, unseen)| {
                let s: f64 = toks.iter().map(|t| *logs.get(t).unwrap_or(unseen)).sum();
                (l.clone(), prior + s)
            })
            .collect()
    }

    /// The likeliest of `among` for `text`.
    pub fn best(&self, text: &str, among: &[&str]) -> Option<String> {
        self.score(text, among)
            .into_iter()
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(l, _)| l)
    }
}
