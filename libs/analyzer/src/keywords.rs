//! Keywords a sales person wants: the customer's words first, ranked by TF-IDF (jieba-rs for
//! Chinese; a tokenizer and stop words for English), with product, price, time and objection
//! words raised and greetings and fillers never taken.

use std::collections::HashMap;

use jieba_rs::{Jieba, KeywordExtract, TfIdf};

use crate::{Speaker, Turn};

/// Keywords returned at most.
const TOP: usize = 5;

/// Words a sales person looks for: raised in the ranking.
const BOOST_ZH: &[&str] = &[
    "价格",
    "价钱",
    "费用",
    "多少钱",
    "优惠",
    "折扣",
    "便宜",
    "贵",
    "套餐",
    "合同",
    "报价",
    "月费",
    "年费",
    "工资",
    "薪资",
    "薪水",
    "待遇",
    "底薪",
    "提成",
    "社保",
    "五险一金",
    "面试",
    "入职",
    "岗位",
    "职位",
    "简历",
    "地址",
    "时间",
    "明天",
    "后天",
    "今天",
    "下午",
    "上午",
    "晚上",
    "周一",
    "周二",
    "周三",
    "周四",
    "周五",
    "周六",
    "周日",
    "下周",
    "宽带",
    "保险",
    "课程",
    "软件",
    "试用",
    "续费",
    "到期",
    "缴费",
    "账单",
    "快递",
    "预约",
    "资料",
    "微信",
    "考虑",
    "商量",
    "竞品",
    "已经",
    "没时间",
    "开车",
    "开会",
    "不需要",
    "投诉",
    "满意",
    "问卷",
    "评价",
    "服务",
    "安装",
    "办理",
];
const BOOST_EN: &[&str] = &[
    "price",
    "pricing",
    "cost",
    "costs",
    "fee",
    "fees",
    "discount",
    "deal",
    "offer",
    "quote",
    "contract",
    "expensive",
    "cheap",
    "budget",
    "salary",
    "pay",
    "wage",
    "benefits",
    "interview",
    "position",
    "job",
    "role",
    "resume",
    "address",
    "time",
    "tomorrow",
    "today",
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
    "week",
    "morning",
    "afternoon",
    "evening",
    "broadband",
    "internet",
    "insurance",
    "policy",
    "course",
    "software",
    "trial",
    "renewal",
    "renew",
    "payment",
    "bill",
    "delivery",
    "appointment",
    "brochure",
    "email",
    "competitor",
    "already",
    "busy",
    "driving",
    "meeting",
    "survey",
    "service",
    "installation",
    "plan",
    "upgrade",
    "subscription",
];
/// Never keywords.
const STOP_ZH: &[&str] = &[
    "您好",
    "你好",
    "喂",
    "嗯",
    "啊",
    "哦",
    "呃",
    "好的",
    "好",
    "是的",
    "对",
    "那个",
    "这个",
    "就是",
    "然后",
    "我们",
    "你们",
    "他们",
    "一下",
    "可以",
    "谢谢",
    "不用",
    "请问",
    "先生",
    "女士",
    "公司",
    "这边",
    "那边",
    "现在",
    "什么",
    "怎么",
    "没有",
    "知道",
    "觉得",
    "时候",
    "一个",
    "这样",
    "还是",
    "因为",
    "所以",
    "但是",
    "如果",
    "已经",
    "打扰",
    "再见",
    "拜拜",
    "不好意思",
    "麻烦",
    "客户",
    "坐席",
    "客服",
    "销售",
    "顾问",
    "用户",
    "电话",
    "给您",
    "您的",
    "我的",
    "是不是",
    "有没有",
    "一些",
    "之前",
    "之后",
    "问题",
    "东西",
    "行",
    "呢",
    "吧",
    "吗",
    "的话",
    "本人",
];
const STOP_EN: &[&str] = &[
    "a", "about", "above", "after", "again", "all", "am", "an", "and", "any", "are", "as", "at",
    "be", "because", "been", "before", "being", "but", "by", "can", "could", "did", "do", "does",
    "doing", "don't", "down", "for", "from", "get", "got", "had", "has", "have", "having", "he",
    "her", "here", "him", "his", "how", "i", "i'm", "i'll", "i've", "if", "in", "into", "is", "it",
    "it's", "its", "just", "know", "like", "me", "my", "no", "not", "now", "of", "oh", "ok",
    "okay", "on", "one", "or", "our", "out", "really", "right", "so", "some", "that", "that's",
    "the", "their", "them", "then", "there", "they", "this", "to", "too", "um", "uh", "up", "us",
    "very", "was", "we", "we're", "well", "were", "what", "when", "where", "which", "who", "will",
    "with", "would", "yeah", "yes", "yep", "you", "you're", "your", "hi", "hello", "hey", "thanks",
    "thank", "sure", "great", "good", "bye", "goodbye", "sir", "madam", "ma'am", "mr", "mrs", "ms",
    "calling", "call", "speaking", "this", "is", "am", "let", "want", "need", "go", "going",
    "gonna", "say", "said", "see", "think", "maybe", "thing", "things", "lot", "bit", "much",
    "more", "also", "only", "still", "actually", "agent", "customer", "rep", "client", "there's",
    "what's", "can't", "won't", "didn't", "doesn't", "isn't", "we'll", "you'll", "they're",
    "should", "may", "might", "must", "shall", "than", "these", "those", "time's", "nah", "nope",
    "alright", "fine", "sorry", "please", "today's", "anyway", "mean", "kind", "sort", "guess",
    "look", "tell", "talk",
];

pub struct Keywords {
    jieba: Jieba,
    tfidf: TfIdf,
}

impl Keywords {
    pub fn new() -> Keywords {
        Keywords {
            jieba: Jieba::new(),
            tfidf: TfIdf::default(),
        }
    }

    /// The customer's words weigh twice the agent's.
    pub fn extract(&self, turns: &[Turn], language: &str) -> Vec<String> {
        let text_of = |who: Speaker| {
            turns
                .iter()
                .filter(|t| t.speaker == who)
                .map(|t| t.text.as_str())
                .collect::<Vec<_>>()
                .join("\n")
        };
        let (customer, agent) = (text_of(Speaker::Customer), text_of(Speaker::Agent));
        let mut scores: HashMap<String, f64> = HashMap::new();
        for (text, weight) in [(customer, 2.0), (agent, 1.0)] {
            if text.is_empty() {
                continue;
            }
            let found = if language == "zh" {
                self.chinese(&text)
            } else {
                english(&text)
            };
            for (w, s) in found {
                *scores.entry(w).or_default() += s * weight;
            }
        }
        let mut ranked: Vec<(String, f64)> = scores.into_iter().collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        ranked.into_iter().take(TOP).map(|(w, _)| w).collect()
    }

    fn chinese(&self, text: &str) -> Vec<(String, f64)> {
        let allowed: Vec<String> = [
            "n", "nr", "ns", "nt", "nz", "vn", "v", "t", "m", "a", "eng", "an", "d",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let mut out: Vec<(String, f64)> = self
            .tfidf
            .extract_keywords(&self.jieba, text, 30, allowed)
            .into_iter()
            .filter(|k| !STOP_ZH.contains(&k.keyword.as_str()))
            .filter(|k| k.keyword.chars().count() >= 2 || BOOST_ZH.contains(&k.keyword.as_str()))
            .filter(|k| !k.keyword.chars().all(|c| c.is_ascii_digit()))
            .map(|k| {
                let boost = if BOOST_ZH.contains(&k.keyword.as_str()) {
                    3.0
                } else {
                    1.0
                };
                (k.keyword, k.weight * boost)
            })
            .collect();
        // Boost words jieba's dictionary splits or tags otherwise.
        for w in BOOST_ZH {
            if text.contains(w) && !out.iter().any(|(k, _)| k == w) && w.chars().count() >= 2 {
                out.push((w.to_string(), 1.5));
            }
        }
        out
    }
}

fn english(text: &str) -> Vec<(String, f64)> {
    let lower = text.to_lowercase();
    let mut tf: HashMap<&str, f64> = HashMap::new();
    let mut total = 0.0;
    for w in lower
        .split(|c: char| !c.is_alphanumeric() && c != '\'')
        .map(|w| w.trim_matches('\''))
        .filter(|w| w.len() >= 3 || BOOST_EN.contains(w))
    {
        total += 1.0;
        if STOP_EN.contains(&w) || w.chars().all(|c| c.is_ascii_digit()) {
            continue;
        }
        *tf.entry(w).or_default() += 1.0;
    }
    if total == 0.0 {
        return Vec::new();
    }
    tf.into_iter()
        .map(|(w, n)| {
            let boost = if BOOST_EN.contains(&w) { 3.0 } else { 1.0 };
            // Longer words carry more content than short ones.
            let length = (w.len() as f64).ln().max(1.0);
            (w.to_string(), n / total * boost * length)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::turns::turns;

    #[test]
    fn prices_and_times_rank_high_and_fillers_never() {
        let k = Keywords::new();
        let zh = k.extract(
            &turns("坐席：您好，宽带套餐现在有优惠，一年只要九百九。\n客户：嗯，价格还行，那个，明天下午你把合同发我看看。"),
            "zh",
        );
        assert!(zh.iter().any(|w| w == "价格"), "{zh:?}");
        assert!(
            zh.iter().any(|w| w == "合同" || w == "明天" || w == "下午"),
            "{zh:?}"
        );
        assert!(!zh.iter().any(|w| w == "嗯" || w == "那个"), "{zh:?}");
        let en = k.extract(
            &turns("Agent: Our broadband plan is $40 a month.\nCustomer: Um, well, the price is too expensive, you know, maybe on Monday."),
            "en",
        );
        assert!(
            en.iter().any(|w| w == "price" || w == "expensive"),
            "{en:?}"
        );
        assert!(
            !en.iter().any(|w| w == "um" || w == "well" || w == "know"),
            "{en:?}"
        );
    }
}
