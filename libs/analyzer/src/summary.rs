//! A one-to-three sentence summary: the customer's stance, then the agreed next step or the
//! objection when the conversation names one (a time, a price, a competitor), in the
//! conversation's language.

use crate::{Intent, Sentiment, Speaker, Turn};

/// Time words, Chinese and English, that name when a next step happens.
const TIMES_ZH: &[&str] = &[
    "今天",
    "明天",
    "后天",
    "大后天",
    "下周",
    "这周",
    "周一",
    "周二",
    "周三",
    "周四",
    "周五",
    "周六",
    "周日",
    "星期一",
    "星期二",
    "星期三",
    "星期四",
    "星期五",
    "星期六",
    "星期天",
    "上午",
    "下午",
    "晚上",
    "中午",
    "月底",
    "月初",
];
const TIMES_EN: &[&str] = &[
    "today",
    "tomorrow",
    "tonight",
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
    "next week",
    "this week",
    "morning",
    "afternoon",
    "evening",
    "end of the month",
];
const PRICE_ZH: &[&str] = &["贵", "价格", "多少钱", "费用", "便宜", "优惠"];
const PRICE_EN: &[&str] = &[
    "expensive",
    "price",
    "cost",
    "how much",
    "cheaper",
    "discount",
];
const HAS_ZH: &[&str] = &["已经有", "已经办", "已经买", "用着", "别家", "其他家"];
const HAS_EN: &[&str] = &[
    "already have",
    "already got",
    "already use",
    "another provider",
    "competitor",
    "all set",
];

/// Characters a Chinese time phrase is made of.
const TIME_CHARS_ZH: &str =
    "今明后天大下这本周一二三四五六七八九十日星期上午中晚点半刻分号月底初零两0123456789:：早";
/// Words an English time phrase is made of.
const TIME_WORDS_EN: &[&str] = &[
    "at",
    "on",
    "next",
    "this",
    "the",
    "by",
    "around",
    "after",
    "before",
    "am",
    "pm",
    "a.m.",
    "p.m.",
    "o'clock",
    "noon",
    "morning",
    "afternoon",
    "evening",
    "night",
    "week",
    "end",
    "of",
    "month",
    "half",
    "past",
    "quarter",
    "in",
];

/// The first time phrase in `text`, as far as it goes: "明天下午三点", "tomorrow at 3 pm".
fn when(text: &str, zh: bool) -> Option<String> {
    let words = if zh { TIMES_ZH } else { TIMES_EN };
    let lower = text.to_lowercase();
    let hay = if zh { text } else { lower.as_str() };
    let at = words.iter().filter_map(|w| hay.find(w)).min()?;
    let phrase = if zh {
        hay[at..]
            .chars()
            .take_while(|c| TIME_CHARS_ZH.contains(*c))
            .take(10)
            .collect::<String>()
    } else {
        let mut taken: Vec<&str> = Vec::new();
        for w in hay[at..].split_whitespace() {
            let bare = w.trim_end_matches(|c: char| ",.!?;:".contains(c));
            let timeish = TIMES_EN.iter().any(|t| t.split(' ').any(|p| p == bare))
                || TIME_WORDS_EN.contains(&bare)
                || bare.chars().next().is_some_and(|c| c.is_ascii_digit());
            if !timeish || taken.len() >= 6 {
                break;
            }
            taken.push(bare);
            if bare.len() != w.len() {
                break;
            }
        }
        // A phrase does not end on a joining word.
        while taken.last().is_some_and(|w| {
            [
                "at", "on", "the", "by", "of", "in", "around", "after", "before",
            ]
            .contains(w)
        }) {
            taken.pop();
        }
        taken.join(" ")
    };
    let phrase = phrase.trim().to_string();
    (!phrase.is_empty()).then_some(phrase)
}

fn any(text: &str, words: &[&str]) -> bool {
    let lower = text.to_lowercase();
    words.iter().any(|w| lower.contains(w))
}

pub fn summary(intent: Intent, sentiment: Sentiment, turns: &[Turn], language: &str) -> String {
    let zh = language == "zh";
    let all: String = turns
        .iter()
        .map(|t| t.text.as_str())
        .collect::<Vec<_>>()
        .join("\n");
    let customer: String = turns
        .iter()
        .filter(|t| t.speaker == Speaker::Customer)
        .map(|t| t.text.as_str())
        .collect::<Vec<_>>()
        .join("\n");
    let mut out = Vec::new();
    let mood = match (sentiment, zh) {
        (Sentiment::Positive, true) => "，态度积极",
        (Sentiment::Negative, true) => "，态度不满",
        (_, true) => "",
        (Sentiment::Positive, false) => ", and sounded positive",
        (Sentiment::Negative, false) => ", and sounded annoyed",
        (_, false) => "",
    };
    let stance = match (intent, zh) {
        (Intent::Interested, true) => format!("客户有意向，同意进行下一步{mood}。"),
        (Intent::Considering, true) => format!("客户尚在考虑，希望先了解更多信息{mood}。"),
        (Intent::Inconvenient, true) => format!("客户现在不方便通话，希望改时间再联系{mood}。"),
        (Intent::NotInterested, true) => format!("客户明确拒绝，没有意向{mood}。"),
        (Intent::WrongNumber, true) => "接听人不是要找的客户，号码有误。".to_string(),
        (Intent::NoConversation, true) => {
            "未与客户形成有效通话（语音信箱、语音提示或无人应答）。".to_string()
        }
        (Intent::Interested, false) => {
            format!("The customer is interested and agreed to the next step{mood}.")
        }
        (Intent::Considering, false) => {
            format!("The customer is undecided and wants more information first{mood}.")
        }
        (Intent::Inconvenient, false) => {
            format!("The customer could not talk and asked to be called at another time{mood}.")
        }
        (Intent::NotInterested, false) => format!("The customer declined{mood}."),
        (Intent::WrongNumber, false) => {
            "The person who answered is not the intended customer: wrong number.".to_string()
        }
        (Intent::NoConversation, false) => {
            "No real conversation took place (voicemail, a recorded prompt or silence).".to_string()
        }
    };
    out.push(stance);
    match intent {
        Intent::Interested | Intent::Inconvenient | Intent::Considering => {
            if let Some(t) = when(&customer, zh).or_else(|| when(&all, zh)) {
                out.push(match (intent, zh) {
                    (Intent::Interested, true) => format!("约定时间：{t}。"),
                    (Intent::Inconvenient, true) => format!("建议回访时间：{t}。"),
                    (_, true) => format!("提到的时间：{t}。"),
                    (Intent::Interested, false) => format!("Agreed time: {t}."),
                    (Intent::Inconvenient, false) => format!("Call back: {t}."),
                    (_, false) => format!("Time mentioned: {t}."),
                });
            }
        }
        _ => {}
    }
    if matches!(intent, Intent::Considering | Intent::NotInterested) {
        let price = any(&customer, if zh { PRICE_ZH } else { PRICE_EN });
        let has = any(&customer, if zh { HAS_ZH } else { HAS_EN });
        if has {
            out.push(
                if zh {
                    "客户已有同类产品或服务。"
                } else {
                    "The customer already has a similar product or service."
                }
                .to_string(),
            );
        } else if price {
            out.push(
                if zh {
                    "客户关心价格。"
                } else {
                    "Price is a concern."
                }
                .to_string(),
            );
        }
    }
    out.truncate(3);
    if zh {
        out.concat()
    } else {
        out.join(" ")
    }
}
