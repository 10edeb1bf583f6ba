//! Intent and sentiment from cue phrases: each cue adds its weight to an intent (or to the
//! customer's sentiment) where the customer says it, later turns counting more (the customer's
//! final stance decides). A cue is not counted when a negation comes right before it
//! (不/没/别 for Chinese, "not", "don't", ... for English), and phrases that carry their own
//! negation are cues of their own ("不需要", "not interested").
//!
//! The lexicons are text files in `libs/analyzer/lexicon/` (`<weight> <phrase>` per line),
//! compiled into the binary.

use crate::{Intent, Sentiment};

/// (phrase, weight). Chinese phrases match as substrings; ASCII ones at word boundaries,
/// lower-cased.
pub type Cues = Vec<(String, f32)>;

/// Every lexicon, parsed.
pub struct Lexicon {
    /// Interested, considering, inconvenient, not interested, wrong number.
    pub intents: Vec<(Intent, Cues)>,
    pub agent_wrong: Cues,
    pub no_conversation: Cues,
    pub positive: Cues,
    pub negative: Cues,
    pub fillers: Vec<String>,
}

fn cues(text: &str) -> Cues {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let (w, phrase) = l.split_once(' ')?;
            let w: f32 = w.parse().ok()?;
            let phrase = phrase.trim();
            let phrase = if phrase.is_ascii() {
                phrase.to_lowercase()
            } else {
                phrase.to_string()
            };
            (!phrase.is_empty() && w != 0.0).then_some((phrase, w))
        })
        .collect()
}

impl Lexicon {
    pub fn load() -> Lexicon {
        Lexicon {
            intents: vec![
                (
                    Intent::Interested,
                    cues(include_str!("../lexicon/intent-interested.txt")),
                ),
                (
                    Intent::Considering,
                    cues(include_str!("../lexicon/intent-considering.txt")),
                ),
                (
                    Intent::Inconvenient,
                    cues(include_str!("../lexicon/intent-inconvenient.txt")),
                ),
                (
                    Intent::NotInterested,
                    cues(include_str!("../lexicon/intent-not_interested.txt")),
                ),
                (
                    Intent::WrongNumber,
                    cues(include_str!("../lexicon/intent-wrong_number.txt")),
                ),
            ],
            agent_wrong: cues(include_str!("../lexicon/agent-wrong_number.txt")),
            no_conversation: cues(include_str!("../lexicon/no_conversation.txt")),
            positive: cues(include_str!("../lexicon/positive.txt")),
            negative: cues(include_str!("../lexicon/negative.txt")),
            fillers: include_str!("../lexicon/fillers.txt")
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(str::to_lowercase)
                .collect(),
        }
    }
}

/// Chinese negations that undo a cue right after them.
const NEGATIONS_ZH: &[char] = &['不', '没', '别', '未', '非', '无'];
/// English negations that undo a cue when they are among the two words before it.
const NEGATIONS_EN: &[&str] = &[
    "not", "don't", "dont", "didn't", "doesn't", "never", "no", "can't", "cannot", "won't",
    "isn't", "wasn't", "aren't", "hardly",
];

/// Words after a Chinese negation that still leave the cue after them negated ("不会交钱",
/// "不想去", "没法来", "别再打").
const NEGATED_MODALS_ZH: &[char] = &[
    '会', '能', '想', '要', '用', '再', '太', '愿', '敢', '肯', '必', '法',
];

/// Whether the text before a Chinese cue negates it: a negation right before it, or a negation
/// and a modal ("不会", "不想", "没法").
fn negated_zh(before: &str) -> bool {
    let mut back = before.chars().rev();
    match (back.next(), back.next()) {
        (Some(a), _) if NEGATIONS_ZH.contains(&a) => true,
        (Some(m), Some(n)) => NEGATED_MODALS_ZH.contains(&m) && NEGATIONS_ZH.contains(&n),
        _ => false,
    }
}

/// Whether a Chinese cue is asked rather than said: a question particle right after it
/// ("要得不？", "可以吗", "行么").
fn asked_zh(after: &str) -> bool {
    let mut next = after.chars();
    matches!(
        (next.next(), next.next()),
        (Some('吗' | '么' | '麼'), _)
            | (Some('嘛'), Some('？' | '?'))
            | (Some('不' | '没'), Some('？' | '?'))
    )
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '\''
}

/// Total weight of `cues` in `text` (`lower` is `text` lower-cased). With `negated_too`, a
/// cue counts even right after a negation.
pub fn score(text: &str, lower: &str, cues: &Cues, negated_too: bool) -> f32 {
    let mut total = 0.0;
    for (phrase, weight) in cues {
        let ascii = phrase.is_ascii();
        let hay = if ascii { lower } else { text };
        let mut from = 0;
        while let Some(i) = hay[from..].find(phrase.as_str()) {
            let at = from + i;
            let end = at + phrase.len();
            from = end;
            if ascii {
                let before = hay[..at].chars().next_back();
                let after = hay[end..].chars().next();
                let starts_word = phrase.starts_with(char::is_alphanumeric);
                let ends_word = phrase.ends_with(char::is_alphanumeric);
                if (starts_word && before.is_some_and(is_word_char))
                    || (ends_word && after.is_some_and(is_word_char))
                {
                    continue;
                }
                if !negated_too
                    && !phrase.starts_with("no")
                    && !phrase.starts_with("don't")
                    && hay[..at]
                        .split(|c: char| !is_word_char(c))
                        .filter(|w| !w.is_empty())
                        .rev()
                        .take(2)
                        .any(|w| NEGATIONS_EN.contains(&w))
                {
                    continue;
                }
                // "Absolutely not", "sure not": a one-word cue that "not" undoes after it.
                if !negated_too && !phrase.contains(' ') && hay[end..].starts_with(" not") {
                    continue;
                }
            } else if !negated_too {
                let first = phrase.chars().next();
                if first.is_some_and(|c| !NEGATIONS_ZH.contains(&c))
                    && (negated_zh(&hay[..at]) || asked_zh(&hay[end..]))
                {
                    continue;
                }
            }
            total += weight;
        }
    }
    total
}

/// The sentiment a score says.
pub fn sentiment_of(score: f32) -> Sentiment {
    if score >= 1.0 {
        Sentiment::Positive
    } else if score <= -1.0 {
        Sentiment::Negative
    } else {
        Sentiment::Neutral
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_lexicon_parses_and_is_not_empty() {
        let l = Lexicon::load();
        assert_eq!(l.intents.len(), 5);
        for (i, c) in &l.intents {
            assert!(c.len() > 20, "{i:?}");
        }
        assert!(!l.no_conversation.is_empty() && !l.positive.is_empty());
        assert!(!l.negative.is_empty() && !l.fillers.is_empty() && !l.agent_wrong.is_empty());
    }

    #[test]
    fn negations_and_word_boundaries() {
        let c: Cues = vec![
            ("可以".into(), 1.0),
            ("sure".into(), 1.0),
            ("no thanks".into(), 2.0),
        ];
        assert_eq!(score("可以的", "可以的", &c, false), 1.0);
        assert_eq!(score("不可以", "不可以", &c, false), 0.0);
        assert_eq!(score("Sure!", "sure!", &c, false), 1.0);
        assert_eq!(score("I'm not sure", "i'm not sure", &c, false), 0.0);
        assert_eq!(score("Pressure", "pressure", &c, false), 0.0);
        assert_eq!(score("No thanks.", "no thanks.", &c, false), 2.0);
        // A negation and a modal before a cue, a question particle after it, "not" after a
        // one-word cue.
        assert_eq!(score("不会可以", "不会可以", &c, false), 0.0);
        assert_eq!(score("可以吗？", "可以吗？", &c, false), 0.0);
        assert_eq!(score("Sure not", "sure not", &c, false), 0.0);
        assert_eq!(score("不会可以", "不会可以", &c, true), 1.0);
    }
}
