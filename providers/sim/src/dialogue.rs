//! Simulated transcripts of answered calls, in Chinese and English: what the customer wanted
//! ([`intent_for`]) and how the conversation went ([`dialogue`]), both pure functions of a 64-bit
//! draw.
//!
//! A dialogue is composed from pools: the agent's opening (a greeting, who is calling and the
//! pitch of one of four domains, with names, companies, products, times and prices filled in),
//! the customer's answer expressing the intent (many wordings, moods, dialect words, short
//! answers, interruptions, hesitation), follow-ups and closings. About 70 % of the transcripts
//! label their speakers (`坐席：`, `Agent: ` ...), the others alternate lines, agent first.

/// What the customer of an answered call wanted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Intent {
    Interested,
    Considering,
    Inconvenient,
    NotInterested,
    WrongNumber,
    NoConversation,
}

impl Intent {
    pub const ALL: [Intent; 6] = [
        Intent::Interested,
        Intent::Considering,
        Intent::Inconvenient,
        Intent::NotInterested,
        Intent::WrongNumber,
        Intent::NoConversation,
    ];

    /// "interested", "considering", "inconvenient", "not_interested", "wrong_number",
    /// "no_conversation"
    pub fn name(self) -> &'static str {
        match self {
            Intent::Interested => "interested",
            Intent::Considering => "considering",
            Intent::Inconvenient => "inconvenient",
            Intent::NotInterested => "not_interested",
            Intent::WrongNumber => "wrong_number",
            Intent::NoConversation => "no_conversation",
        }
    }
}

/// The language of a transcript.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Language {
    Zh,
    En,
}

impl Language {
    /// "zh" / "en"
    pub fn code(self) -> &'static str {
        match self {
            Language::Zh => "zh",
            Language::En => "en",
        }
    }
}

/// What the call was about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Domain {
    /// A staffing agency offering a job or an interview.
    Recruiting,
    /// Broadband, insurance, training courses, software.
    Sales,
    /// An appointment, a renewal, a payment due, a delivery.
    ServiceReminder,
    /// A satisfaction callback or a short questionnaire.
    Survey,
}

impl Domain {
    pub const ALL: [Domain; 4] = [
        Domain::Recruiting,
        Domain::Sales,
        Domain::ServiceReminder,
        Domain::Survey,
    ];

    /// "recruiting", "sales", "service_reminder", "survey"
    pub fn name(self) -> &'static str {
        match self {
            Domain::Recruiting => "recruiting",
            Domain::Sales => "sales",
            Domain::ServiceReminder => "service_reminder",
            Domain::Survey => "survey",
        }
    }
}

/// A simulated transcript: lines joined with "\n".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dialogue {
    pub language: Language,
    pub domain: Domain,
    pub intent: Intent,
    pub text: String,
}

/// Per mille shares of the intents, in [`Intent::ALL`] order.
const SHARES: [u64; 6] = [200, 250, 150, 250, 50, 100];

const INTENT_SALT: u64 = 0x1d7e_47f0_5eed_0001;
const DIALOGUE_SALT: u64 = 0xd1a1_09e5_5eed_0002;

/// The intent of a simulated answered call: interested 20 %, considering 25 %, inconvenient 15 %,
/// not_interested 25 %, wrong_number 5 %, no_conversation 10 % (from `draw`).
pub fn intent_for(draw: u64) -> Intent {
    let mut x = mix(draw ^ INTENT_SALT) % 1000;
    for (intent, share) in Intent::ALL.into_iter().zip(SHARES) {
        if x < share {
            return intent;
        }
        x -= share;
    }
    Intent::NoConversation
}

/// A transcript of an answered call whose customer had `intent`, deterministic in `draw`:
/// the language (about 2/3 Chinese), the domain, the wording and its variety all come from `draw`.
pub fn dialogue(draw: u64, intent: Intent) -> Dialogue {
    let mut rng = Rng(mix(draw ^ DIALOGUE_SALT));
    let zh = rng.below(3) != 0;
    let domain = Domain::ALL[rng.below(Domain::ALL.len())];
    let kinds = kinds(domain, zh);
    let kind = &kinds[rng.below(kinds.len())];
    let slots = Slots::new(&mut rng, zh, kind);
    let labelled = rng.chance(70);
    let r = rng.below(100);
    let mood = match intent {
        Intent::Interested => [50, 92],
        Intent::Considering => [35, 82],
        Intent::Inconvenient => [30, 70],
        Intent::NotInterested => [20, 55],
        Intent::WrongNumber => [30, 70],
        Intent::NoConversation => [0, 100],
    }
    .iter()
    .filter(|&&t| r >= t)
    .count();
    let mut g = Gen {
        rng,
        zh,
        labelled,
        mood,
        kind,
        slots,
        turns: Vec::new(),
    };
    match intent {
        Intent::Interested => g.interested(),
        Intent::Considering => g.considering(),
        Intent::Inconvenient => g.inconvenient(),
        Intent::NotInterested => g.not_interested(),
        Intent::WrongNumber => g.wrong_number(),
        Intent::NoConversation => g.no_conversation(),
    }
    let text = g.render(domain, intent == Intent::NoConversation);
    Dialogue {
        language: if zh { Language::Zh } else { Language::En },
        domain,
        intent,
        text,
    }
}

const GOLDEN: u64 = 0x9e37_79b9_7f4a_7c15;

/// The SplitMix64 finaliser: a well-mixed 64-bit value of `x`.
fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(GOLDEN);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A SplitMix64 stream of choices.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(GOLDEN);
        mix(self.0)
    }

    /// Uniform in `0..n` (0 when `n` is 0).
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    /// One of the `|`-separated alternatives of `s`.
    fn alt(&mut self, s: &'static str) -> &'static str {
        self.alt_by(s, '|')
    }

    fn alt_by(&mut self, s: &'static str, sep: char) -> &'static str {
        let n = s.split(sep).count();
        s.split(sep).nth(self.below(n)).unwrap_or_default()
    }

    /// Two different alternatives of `s` (when it has two).
    fn two(&mut self, s: &'static str) -> (&'static str, &'static str) {
        let xs: Vec<&'static str> = s.split('|').collect();
        let n = xs.len().max(1);
        let i = self.below(n);
        let j = (i + 1 + self.below((n - 1).max(1))) % n;
        let at = |k: usize| xs.get(k).copied().unwrap_or_default();
        (at(i), at(j))
    }
}

/// A pool of lines in both languages, `|`-separated alternatives.
struct Bi {
    zh: &'static str,
    en: &'static str,
}

/// The index of an annoyed customer in pools by mood (friendly, neutral, annoyed).
const ANNOYED: usize = 2;

/// One kind of call within a domain, in one language. Fields hold `|`-separated alternatives;
/// templates use `{a}` agent, `{c}` company, `{n}` how the customer is addressed, `{p}` the
/// job/product/item, `{m}` the pay/price/amount, `{t}` a time. An item may name the companies
/// and prices that go with it: "item@company/company@price/price".
struct Kind {
    company: &'static str,
    item: &'static str,
    price: &'static str,
    time: &'static str,
    /// Who is calling, when the kind has its own way of saying it ("" for the general pool).
    intro: &'static str,
    pitch: &'static str,
    /// "question>answer": a customer's question and the agent's answer.
    qa: &'static str,
    /// The agent's next step once the customer agrees, and the customer's replies to it:
    /// "next step>reply/reply".
    next: &'static str,
    accept: &'static str,
    consider: &'static str,
    refuse: &'static str,
    /// The agent's attempt to keep a refusing customer, cut off.
    more: &'static str,
}

const ZH_RECRUITING: &[Kind] = &[
    Kind {
        company: "智才人力|优聘人力资源|众创劳务|鑫程人力|才汇招聘|前途人力|博雅人才服务",
        item: "鑫达电子厂的普工|华通物流园的分拣员|宏远食品厂的包装工|城南仓储的叉车司机|新能源电池厂的操作工|连锁超市的理货员|小区物业的保安|汽配厂的质检员",
        price: "综合工资六到八千|月薪5500起，交五险一金|时薪23元，月结|包吃包住，到手七千左右|底薪4500加计件|八千到一万，多劳多得",
        time: "明天上午十点|周三下午两点|后天上午九点半|这周五下午|下周一上午",
        intro: "我是{c}的AI寻访员{a}|我是{c}招聘部的{a}|我这边是{c}的招聘顾问{a}",
        pitch: "看到您之前在网上投过简历，现在{p}正在招人，{m}，想问问您有没有兴趣？|我们这边有个{p}的岗位，{m}，离您那边不远，您最近在找工作吗？|您之前登记过求职意向，现在{p}缺人，{m}，要不要过去面试看看？",
        qa: "要倒班吗？>白班为主，忙的时候两班倒，加班有加班费。|包吃住吗？>包住的，四人间，吃饭有餐补。|工资几号发？>每月15号准时发，不拖欠。|交社保吗？>入职就给交五险。|离地铁远不远？>有班车，地铁口直接接送。|要体检吗？>要的，体检费入职后给报销。",
        next: "好的，那我帮您约{t}面试，地址稍后短信发您。>好的，我到时候过去。/行，地址发我。/中，记住了。/要得，身份证我带着。/得嘞，那就{t}。|那我先给您登记上，{t}过去面试，记得带身份证。>好的，我到时候过去。/行，地址发我。/中，记住了。/要得，身份证我带着。/得嘞，那就{t}。|太好了，我把您的信息推给厂里，{t}直接去面试就行。>好的，我到时候过去。/行，地址发我。/中，记住了。/要得，身份证我带着。/得嘞，那就{t}。",
        accept: "可以啊，我正好在找活儿。|{m}还行，我去看看。|行，{t}我能过去。|中，你给我约个面试吧。|要得，我去试一哈嘛。",
        consider: "我现在还有份活儿，得想想要不要换。|{m}有点少啊，我再看看别的。|离我家有点远，我考虑考虑。|我得跟家里人商量一下再说。|你把岗位要求发我微信，我看看再说。",
        refuse: "我已经找到工作了，不用了。|工厂的活太累，我不干。|我不找工作，谢谢。|我现在干得挺好，不打算换。|{m}太低了，不考虑。",
        more: "我们这个岗位{m}，最近好多人报名——|其实离您那边就半小时车程，而且——|您可以先去看看环境，不合适也没关系——",
    },
    Kind {
        company: "英睿人才|嘉禾猎头|恒远人力资源|聚才网|卓越人才顾问|领航猎头",
        item: "一家上市公司的财务主管|互联网公司的新媒体运营|外企的行政专员|制造业公司的销售经理|科技公司的Java开发|医药公司的人事主管|跨境电商的采购专员",
        price: "月薪一万二到一万五|年薪二十万左右|八千到一万加年终奖|底薪一万加绩效|比市场价高两成",
        time: "明天下午两点|周四上午十点|后天下午三点|下周二上午|这周六上午十一点",
        intro: "我是{c}的招聘顾问{a}|我是{c}的{a}，做人才推荐的|我这边是{c}的AI寻访员{a}",
        pitch: "您的简历我们看过了，觉得挺适合{p}这个职位，{m}，想约您聊聊。|现在有个{p}的机会，{m}，您目前考虑看新机会吗？|您投递的{p}岗位已经通过初筛，{m}，想邀请您来面试。",
        qa: "是哪家公司？>是行业里的头部企业，具体名称面试前告诉您。|可以线上面试吗？>第一轮可以视频面试。|要经常加班吗？>基本不加班，项目忙的时候偶尔会有。|试用期多久？>三个月，试用期工资打八折。|有期权吗？>核心岗位有期权激励。",
        next: "好的，那我帮您约{t}的面试，面试邀请会发到您邮箱。>好的，邮箱收到我确认一下。/行，加微信吧。/没问题，{t}我有空。/好嘞，我准备一下简历。|太好了，那就定在{t}，我稍后把JD发您微信。>好的，邮箱收到我确认一下。/行，加微信吧。/没问题，{t}我有空。/好嘞，我准备一下简历。|好的，我这边给您安排{t}视频面试，链接短信发您。>好的，邮箱收到我确认一下。/行，加微信吧。/没问题，{t}我有空。/好嘞，我准备一下简历。",
        accept: "可以啊，我最近正好在看机会。|这个岗位挺对口的，可以聊聊。|{m}的话可以，约吧。|行，{t}我可以。",
        consider: "我现在的公司还行，得想想要不要动。|{m}跟我预期差一点，我考虑下。|你把JD发我，我看看再回复你。|我得先等年终奖发了再说。",
        refuse: "我刚入职新公司，暂时不看机会。|不考虑跳槽，谢谢。|这个方向我不感兴趣。|{m}太低了，不用了。|我手上已经有几个offer了，不用了。",
        more: "这家公司平台很大，{m}，机会难得——|您可以先了解一下，不耽误您——|我们这边也有其他岗位可以推荐——",
    },
];

const ZH_SALES: &[Kind] = &[
    Kind {
        company: "星网宽带|城联通信|联讯光网|天宇宽带",
        item: "千兆光纤宽带|500兆宽带|宽带加电视的融合套餐|宽带加两张手机卡的家庭套餐",
        price: "每月只要59元|一年699元还送路由器|前三个月免费|包年比现在便宜两百",
        time: "明天上午|这周六|后天下午|今天下午四点以后",
        intro: "",
        pitch: "您家小区最近开通了{p}，{m}，想问问您需不需要升级一下？|我们现在有个{p}的活动，{m}，老客户优先办理，您了解一下吗？|看到您家宽带快到期了，现在换{p}，{m}，比您现在的划算。",
        qa: "网速稳定吗？>光纤入户，晚高峰也不卡。|安装要另外收钱吗？>安装免费，还送路由器。|合约期多久？>一年，到期可以随时退。|原来的宽带怎么办？>我们可以帮您办转网。",
        next: "好的，那我帮您登记，{t}安排师傅上门安装。>行，{t}家里有人。/好的，让师傅来之前打个电话。/得嘞，等着。/嗯，链接发我吧。|那我把办理链接发您手机，师傅{t}上门。>行，{t}家里有人。/好的，让师傅来之前打个电话。/得嘞，等着。/嗯，链接发我吧。|好的，给您预约了{t}装机，师傅会提前联系您。>行，{t}家里有人。/好的，让师傅来之前打个电话。/得嘞，等着。/嗯，链接发我吧。",
        accept: "正好我家网卡得要命，给我换一个吧。|{m}挺划算的，办吧。|行，那就装{p}吧。|可以，{t}来装吧。",
        consider: "我家宽带还没到期，到期了再说吧。|{m}听着还行，我回去问问家里人。|我再对比一下别家的价格。|你发个套餐介绍给我看看吧。",
        refuse: "我家已经装了宽带，不用了。|我们马上要搬家了，不办。|手机流量够用，不需要宽带。|我不换，现在这个挺好。",
        more: "我们这个{m}，而且还送——|您现在用的套餐其实比这个贵——|您可以先试用一个月——",
    },
    Kind {
        company: "安泰保险|平和人寿|众信保险|康宁保险",
        item: "百万医疗险|综合意外险|重疾险|少儿医疗险|家庭财产险",
        price: "每月只要十几块钱|一年268元|首月只要一块钱|一年不到五百",
        time: "今天|这周内|明天|月底前",
        intro: "",
        pitch: "我们现在有一款{p}，{m}，保障很全面，想给您介绍一下。|您是我们的老客户，现在可以升级{p}，{m}，您了解一下吗？|最近很多家庭都在配置{p}，{m}，我给您简单说说？",
        qa: "都保什么？>住院、手术、大病都能报，免赔额一万。|理赔麻烦吗？>线上就能申请，三个工作日到账。|多大年纪能买？>出生28天到65岁都可以投保。|能退吗？>有15天犹豫期，不满意全额退。",
        next: "好的，那我把投保链接发您，{t}就能生效。>好，发我吧。/行，我看一下条款。/嗯，加微信吧，就这个号。/得嘞。|那我帮您预留名额，稍后发短信给您确认。>好，发我吧。/行，我看一下条款。/嗯，加微信吧，就这个号。/得嘞。|好的，我加您微信，把条款发您，确认后就能投保。>好，发我吧。/行，我看一下条款。/嗯，加微信吧，就这个号。/得嘞。",
        accept: "{m}的话可以，给我上一份吧。|正好想给家里人配个保险，可以。|行，那就买{p}吧。|可以，你给我办吧。",
        consider: "保险这东西我得好好研究一下。|{m}倒是不贵，我回去跟老婆商量商量。|你把条款发我，我看完再说。|我已经有一份了，再看看要不要补。",
        refuse: "我单位有保险，不需要。|我不买保险，谢谢。|保险都是忽悠人的，别跟我说了。|已经买过了，不用了。",
        more: "这款{m}，保额有一百万——|很多客户一开始也觉得用不上，但是——|您先听我说一分钟——",
    },
    Kind {
        company: "启航教育|学而优培训|职通教育|优学在线",
        item: "Python编程课|成人学历提升课程|少儿英语课|会计初级职称培训|短视频运营课",
        price: "原价3980现在只要1980|可以免费试听两节|分12期免息|报名就送教材",
        time: "这周六上午|明天晚上七点|周日下午|下周三晚上",
        intro: "",
        pitch: "我们最近开了{p}，{m}，想问问您或者家里人有没有学习需求？|您之前在我们这边咨询过{p}，现在{m}，跟您说一声。|给您推荐一下我们的{p}，{m}，名额有限。",
        qa: "线上还是线下？>线上直播加录播，随时可以回看。|多久能学完？>大概三个月，每周两次课。|老师怎么样？>都是十年以上经验的老师。|学完有证书吗？>有结业证书，也可以帮您报考。",
        next: "好的，那我给您约{t}的试听课，链接稍后发您。>行，发我吧。/好的，{t}我有时间。/嗯，加微信吧。/中，到时候听听。|好的，我帮您占个名额，{t}开课。>行，发我吧。/好的，{t}我有时间。/嗯，加微信吧。/中，到时候听听。|那我加您微信，把课程表发给您，{t}第一节课。>行，发我吧。/好的，{t}我有时间。/嗯，加微信吧。/中，到时候听听。",
        accept: "正好想学这个，给我报一个吧。|{m}挺划算，报吧。|可以，先听听试听课。|行，我报名。",
        consider: "我得看看时间排不排得开。|{m}还是有点贵，我再想想。|我问问孩子愿不愿意学。|你把课程大纲发我看看吧。",
        refuse: "我没时间学，不用了。|孩子已经报了别的班了。|这种课网上免费的多了，不需要。|不用了，我对这个没兴趣。",
        more: "现在报名{m}，过了这周就恢复原价了——|好多学员学完都涨薪了——|您可以先免费试听一节——",
    },
    Kind {
        company: "云账通|易店宝|智企云|快马软件",
        item: "进销存软件|客户管理系统|财务记账软件|门店收银系统|排班考勤系统",
        price: "一年只要1299|免费试用30天|基础版每月99元|买两年送一年",
        time: "明天上午|这周四下午|后天|下周一",
        intro: "",
        pitch: "我们是做{p}的，{m}，很多像您这样的门店都在用，想给您介绍一下。|您店里现在用什么管账？我们的{p}，{m}，能省不少事。|我们新推出了{p}，{m}，想约您看个演示。",
        qa: "数据安全吗？>数据都存在云端，每天自动备份。|手机上能用吗？>手机电脑都能用。|能导入原来的数据吗？>可以，我们有专人帮您迁移。|有人教怎么用吗？>有一对一培训，一周内上手。",
        next: "好的，那我安排同事{t}上门给您演示。>好，让他来之前先打电话。/行，账号发我。/可以，{t}我在店里。/嗯，好的。|那我先给您开通试用账号，{t}再回访您用得怎么样。>好，让他来之前先打电话。/行，账号发我。/可以，{t}我在店里。/嗯，好的。|好的，我把开通链接发您，{t}技术会跟您联系。>好，让他来之前先打电话。/行，账号发我。/可以，{t}我在店里。/嗯，好的。",
        accept: "正好我店里的账乱得很，试试吧。|{m}可以接受，开一个吧。|行，那就先试用吧。|可以，{t}过来演示一下。",
        consider: "我得跟合伙人商量一下。|我们现在用的还能凑合，我再想想。|{m}的话，我得算算账。|你先发个介绍和报价给我。",
        refuse: "我们已经有系统了，不换。|小店用不着这个。|不需要，我们用表格就够了。|采购要走总部的流程，我这不需要。",
        more: "我们的{p}{m}，比您现在用的——|很多同行用了以后效率翻倍——|试用是免费的，不满意不收钱——",
    },
];

const ZH_REMINDER: &[Kind] = &[
    Kind {
        company: "仁和体检中心|康华医院",
        item: "体检@仁和体检中心/康华医院@费用已经付过了/记得空腹，费用到时候再付|洗牙@美佳口腔/皓齿口腔诊所@费用已经付过了/到店再付款就行|空调上门维修@家电售后服务中心/安家维修@保修期内免费/上门费30元|车辆保养@车之家4S店/驰骋汽车服务@保养套餐已经付过了/需要先交200元定金|复诊@康华医院/仁和医院@记得带上病历/挂号费已经付过了",
        price: "费用已经付过了|到时候再付款就行",
        time: "明天上午九点|周六下午两点|后天上午十点|今天下午三点",
        intro: "我是{c}的客服{a}|这里是{c}，我是{a}",
        pitch: "跟您确认一下，您预约了{t}的{p}，{m}，时间还可以吗？|提醒您一下，您的{p}安排在{t}，{m}，您那边时间没问题吧？|您在我们这儿预约的{p}是{t}，想跟您确认一下。",
        qa: "需要带什么吗？>带上身份证和预约短信就行。|大概要多久？>一个小时左右。|能改时间吗？>可以的，提前一天告诉我们就行。|要提前到吗？>提前十分钟就行，上门的话师傅会先打电话。",
        next: "好的，已经帮您确认了，{t}见。>好的，记住了。/行，到时候见。/嗯，谢谢提醒。/晓得了。|好的，那就{t}，到时候有短信提醒。>好的，记住了。/行，到时候见。/嗯，谢谢提醒。/晓得了。|好的，给您登记好了，{t}请准时。>好的，记住了。/行，到时候见。/嗯，谢谢提醒。/晓得了。",
        accept: "可以，{t}没问题。|没问题，就按原来的时间。|行，我记着呢。|可以，{t}家里有人。",
        consider: "那天我还不确定，看看行程再回复你。|我得看看那天要不要加班，晚点给你答复。|我想想要不要改个时间。|我先问问家里人那天有没有空。",
        refuse: "取消吧，我不去了。|不用了，我已经在别家做过了。|那个预约帮我取消掉。|不需要了，已经好了。",
        more: "这个名额挺难约的，取消了再约要排——|您要不改个时间，不用直接取消——|其实{m}，您就——",
    },
    Kind {
        company: "星网宽带|城联通信",
        item: "宽带@星网宽带/城联通信@续费一年599元/老客户续费送两个月|健身年卡@力美健身/动感健身会所@续费一年2680元/现在续费享八折|车险@安泰保险/平和保险@续保价格2860元/续保可以打八五折|视频会员@优享视频@续费一年198元/连续包年享八折|月租车位@城市停车/锦绣物业@续租半年1800元/续租一年送一个月",
        price: "续费一年599元|老客户续费送两个月",
        time: "本月25号|下周三|这个月底|三天后",
        intro: "",
        pitch: "您的{p}将在{t}到期，{m}，需要帮您续上吗？|提醒您一下，您的{p}{t}到期，现在{m}，您看要不要续？|您的{p}快到期了，到期日是{t}，{m}。",
        qa: "续了有什么优惠？>老客户续费是最优惠的价格，还能多送一个月。|能换个套餐吗？>可以的，有更便宜的基础版。|不续会怎么样？>到期后会自动停止服务。|可以线上续吗？>可以，我发个链接给您。",
        next: "好的，我帮您办理续费，稍后短信确认。>好的，收到。/行，我去点一下。/嗯，谢谢。/得嘞。|好的，续费链接发您手机了，点进去确认就行。>好的，收到。/行，我去点一下。/嗯，谢谢。/得嘞。|好的，已经给您续上了，有效期顺延一年。>好的，收到。/行，我去点一下。/嗯，谢谢。/得嘞。",
        accept: "续吧，价格也还行。|可以，帮我续一年。|行，照旧续上。|续上吧，省得麻烦。",
        consider: "我再想想要不要续。|{m}有点贵，我比比别家。|等到期那天再说吧。|我得问问家里人还用不用。",
        refuse: "不续了，下个月就搬走了。|不用续，我已经换别家了。|到期就停了吧，不续。|太贵了，不续。",
        more: "老客户{m}，新办的话要贵不少——|到期后再办就没有这个优惠了——|您要不先续三个月——",
    },
    Kind {
        company: "城市燃气|安居水务",
        item: "燃气费@城市燃气@欠费86元/待缴132元|物业费@锦绣物业服务中心@待缴1280元/欠缴半年共1560元|信用卡账单@华信银行信用卡中心@本期应还2350元/最低还款额380元|水费@安居水务@欠费64元/待缴58元|贷款@恒通小贷@本月应还3600元/已逾期两天，应还3620元",
        price: "欠费86元|待缴132元",
        time: "本月20号|这周五|三天内|月底",
        intro: "",
        pitch: "提醒您，您的{p}{m}，请在{t}前缴纳，以免影响使用。|您的{p}目前{m}，最后缴费日是{t}，请您及时处理。|跟您说一下，您名下的{p}{m}，请在{t}之前交一下。",
        qa: "在哪交？>手机App或者营业厅都可以交。|能分期吗？>可以申请分期，我发您链接。|怎么这么多？>这期包含了上个月的滞纳金。|晚交会怎样？>逾期会产生滞纳金，还可能影响信用。",
        next: "好的，缴费链接已经发到您手机上了。>好的，我今天就交。/行，知道了。/嗯，收到了。/晓得了晓得了。|好的，那麻烦您{t}前处理一下，感谢配合。>好的，我今天就交。/行，知道了。/嗯，收到了。/晓得了晓得了。|好的，缴完后系统会自动发短信确认。>好的，我今天就交。/行，知道了。/嗯，收到了。/晓得了晓得了。",
        accept: "好的，我马上交。|行，{t}前肯定交。|知道了，我今天就处理。|中，回头就交。",
        consider: "这个金额不太对，我得核对一下再说。|我查查账单再决定什么时候交。|能不能分期？我考虑一下。|我看看这个月钱够不够。",
        refuse: "这钱我不交，我早就不用了。|我已经交过了，别再催了。|这笔账有问题，我不认，你们别打了。|不交，这个跟我没关系。",
        more: "如果逾期的话会产生滞纳金——|您可以先交一部分——|我们这边可以帮您申请延期——",
    },
    Kind {
        company: "顺达快递|安速快运",
        item: "快递@顺达快递/安速快运@到付28元/运费已付|沙发@美居家具配送部@需要上门安装/运费已付|冰箱@京选物流@送货上门，旧机可以回收/运费已付|洗衣机@京选物流@需要上门安装/需要本人签收|网购的书柜@美居家具配送部/安速快运@需要上门安装/需要本人签收",
        price: "运费已付|需要本人签收",
        time: "今天下午两点到四点|明天上午|今天傍晚六点左右|后天上午十点",
        intro: "我是{c}的配送员{a}|这里是{c}，我是{a}",
        pitch: "您的{p}预计{t}送达，{m}，请问家里有人吗？|您的{p}{t}给您送过去，{m}，方便签收吗？|跟您确认一下，您的{p}{t}配送，{m}。",
        qa: "能放快递柜吗？>大件放不了，小件可以放。|能改到晚上吗？>可以，最晚八点前。|安装收钱吗？>安装是免费的。|能送到楼上吗？>可以，送货上门。",
        next: "好的，那我们{t}准时送到。>好，我等着。/行，到了打电话。/得嘞，辛苦了。/好的好的。|好的，师傅到了会提前给您打电话。>好，我等着。/行，到了打电话。/得嘞，辛苦了。/好的好的。|好的，已经给您备注了，{t}送达。>好，我等着。/行，到了打电话。/得嘞，辛苦了。/好的好的。",
        accept: "有人，送过来吧。|{t}可以，我在家。|行，直接送上来吧。|可以，放门口也行。",
        consider: "那时候我不确定在不在家，我看看再回你。|我问问邻居能不能帮我代收。|我想想是改地址还是改时间，一会儿回复你。|我得看看那天有没有事。",
        refuse: "我已经退货了，不要了。|拒收吧，我没买过这个。|不要了，你们给退回去。|那个订单我取消了。",
        more: "已经在派送路上了，退回去要收运费——|您要不改个时间——|可以放在物业代收——",
    },
];

const ZH_SURVEY: &[Kind] = &[
    Kind {
        company: "家电售后服务中心|城联通信",
        item: "上周的空调安装服务@家电售后服务中心/安家维修|前几天的宽带维修@星网宽带客服中心/城联通信|最近一次的就诊体验@美佳口腔/康华医院|上次的快递服务@顺达快递服务中心/安速快运|营业厅的办理服务@城联通信/星网宽带",
        price: "大概一分钟|只有三个问题|两分钟左右",
        time: "上周|前几天|本月|上次",
        intro: "我是{c}的回访专员{a}|这里是{c}，我是回访专员{a}",
        pitch: "想对您{p}做个简单回访，{m}，请问方便吗？|为了改进服务，想请您对{p}评个分，{m}，可以吗？|我们在做{p}的满意度回访，{m}，耽误您一会儿可以吗？",
        qa: "要多久？>{m}，很快的。|会不会推销东西？>不会的，纯回访。|是匿名的吗？>是的，您的信息会保密。",
        next: "好的，请问您对{p}整体满意吗？满分5分您打几分？>挺满意的，打5分吧。/还行，4分吧，就是来得有点晚。/一般般，3分。/5分，没毛病。|好的，工作人员的服务态度您满意吗？>态度挺好的，没啥意见。/挺客气的，满意。/还行吧。|好的，您觉得我们有哪些需要改进的地方？>希望下次能准时点。/没啥要改进的，挺好。/价格能再便宜点就好了。",
        accept: "可以，你问吧。|行，问吧，快点啊。|好的，没问题。|中，你问嘛。",
        consider: "问卷发我吧，我有空再填。|你先发短信，我看看有没有时间。|我想想再说，要不你发个链接。|晓得了，你发过来我晚上填。",
        refuse: "不用回访了，没意见。|不参加调查，谢谢。|我不做问卷。|别回访了，服务差得很，不想说。",
        more: "就两三个问题，很快的——|您的意见对我们很重要——|完成后还有小礼品——",
    },
    Kind {
        company: "市民服务热线|百川市场调研|社区服务中心|新华民调中心",
        item: "社区公共服务的问卷|居民出行习惯的调查|家庭消费情况的问卷|垃圾分类情况的调查",
        price: "一共五个问题|大概三分钟|完成后送10元话费|只需要两分钟",
        time: "今天|这周|本月|最近",
        intro: "我是{c}的调查员{a}|这里是{c}，我是访问员{a}",
        pitch: "我们正在做一个{p}，{m}，想请您参与一下可以吗？|想邀请您参加{p}，{m}，方便吗？|我们受委托开展{p}，{m}，耽误您几分钟可以吗？",
        qa: "要留身份证号吗？>不需要，完全匿名。|这个有什么用？>结果用于改进社区服务。|真的送话费吗？>完成后24小时内到账。",
        next: "好的，请问您的年龄段是？>三十多岁。/四十岁左右吧。/二十五六。|好的，请问您在本地住了几年了？>住了快十年了。/五六年了吧。/从小就在这儿。|好的，请问您家里一共几口人？>四口人。/三口，我跟老婆孩子。/就我一个。",
        accept: "可以，你问吧。|行，反正有空。|好啊，问吧。|要得，你问嘛。",
        consider: "你发个链接，我有空再填。|我先看看是什么内容再说。|晓得了，把问卷发我手机上吧。|回头看看吧，链接发我。",
        refuse: "不参加，谢谢。|这种调查我不做。|没兴趣，挂了。|不方便透露，不参加了。",
        more: "完全匿名的，{m}——|就几分钟，很快——|还有话费奖励——",
    },
];

const EN_RECRUITING: &[Kind] = &[
    Kind {
        company: "BrightPath Staffing|Keystone Recruiting|TalentBridge|Summit Staffing|NorthStar Talent|Harbor Recruitment",
        item: "warehouse associate role|forklift operator position|delivery driver job|line cook position|care assistant role|security officer job|production operative role|retail stock associate job",
        price: "$18 an hour|$22 an hour plus overtime|$20 an hour, paid weekly|about $900 a week|$19.50 an hour with benefits",
        time: "tomorrow at 10 a.m.|Wednesday at 2 p.m.|Thursday morning|Friday at 3:30|Monday at 9",
        intro: "I'm {a}, the AI recruiting assistant at {c}|this is {a}, a recruiter with {c}",
        pitch: "I saw your resume online and we've got a {p} open, {m}, would you want to hear about it?|we have a {p} near you, {m}, are you still looking for work?|you signed up with us a while back, and there's a {p} going, {m}, fancy an interview?",
        qa: "Is it days or nights?>Mostly days, with some rotating weekends.|Is there parking?>Yes, free parking on site.|When do I get paid?>Every Friday, by direct deposit.|Do I need experience?>No, full training is provided.|Is it full-time?>Yes, forty hours a week, overtime optional.",
        next: "Great, I'll book you in for an interview {t} and text you the address.>Sounds good, I'll be there./Okay, text me the address./Got it, ID and all./Cool, {t} works.|Perfect, I've put you down for {t}. Bring a photo ID.>Sounds good, I'll be there./Okay, text me the address./Got it, ID and all./Cool, {t} works.|Awesome, I'll send your details over and you can go in {t}.>Sounds good, I'll be there./Okay, text me the address./Got it, ID and all./Cool, {t} works.",
        accept: "Yeah, I could do with a job, sign me up.|{m}? That works for me.|Sure, {t} is fine.|Yeah, I reckon I'll give it a go.",
        consider: "I've got a job right now, so I'd need to think about switching.|{m} is a bit low, I'll keep looking around.|It's kinda far from me, let me think about it.|Can you email me the job description? I'll have a look.",
        refuse: "I already found a job, thanks.|That kind of work isn't for me.|I'm not job hunting right now.|I'm happy where I am.|{m}? No way, that's too low.",
        more: "It's {m}, and they're hiring fast—|It's only twenty minutes from you, and—|You could just go see the place, no commitment—",
    },
    Kind {
        company: "Apex Talent Partners|Meridian Search|Hudson & Lane Recruiting|BlueOak Careers|Vantage Executive Search",
        item: "senior accountant role|marketing manager position|software engineer role|people partner position|warehouse operations lead job|sales director role",
        price: "$85k to $95k|around $120k plus bonus|$70k with full benefits|about 15% above market rate",
        time: "Tuesday at 11|tomorrow afternoon|Thursday at 2 p.m.|next Monday morning|Friday at 10",
        intro: "this is {a}, a talent consultant at {c}|I'm {a} with {c}, we do executive search",
        pitch: "I came across your profile and you'd be a strong fit for a {p}, {m}, open to a quick chat?|your application for the {p} has been shortlisted, {m}, and we'd like to set up an interview.|I'm working on a {p} with a great client, {m}, are you open to new opportunities?",
        qa: "Which company is it?>A leading firm in your sector, I can share the name before the interview.|Is it remote?>Hybrid, three days in the office.|What's the process?>Two rounds, the first by video.|Is there equity?>Yes, senior roles get a stock plan.",
        next: "Great, I'll schedule the first interview for {t} and email the invite.>Sounds good, I'll look out for it./Great, send it over./Sure, {t} works./Perfect, I'll update my CV.|Perfect, let's say {t}. I'll send the job description over.>Sounds good, I'll look out for it./Great, send it over./Sure, {t} works./Perfect, I'll update my CV.|Wonderful, I'll set up a video call for {t} and text you the link.>Sounds good, I'll look out for it./Great, send it over./Sure, {t} works./Perfect, I'll update my CV.",
        accept: "Actually yes, I've been looking around lately.|That sounds like a good fit, let's talk.|At {m}, definitely, book it in.|Sure, {t} suits me.",
        consider: "I'm fairly settled where I am, I'd need to think about it.|{m} is a bit under what I'd want, let me mull it over.|Send me the job spec and I'll get back to you.|I want to wait until my bonus pays out, then maybe.",
        refuse: "I just started a new job, so no thanks.|I'm not looking to move.|That's not the direction I want to go.|{m}? That's below what I make now, no thanks.|I've already got a couple of offers, I'm good.",
        more: "The client's growing fast and {m}—|Even just a conversation could be worth your while—|I've also got a couple of other roles that—",
    },
];

const EN_SALES: &[Kind] = &[
    Kind {
        company: "StarNet Fiber|Metro Broadband|ClearLine Internet|Skyline Telecom",
        item: "gigabit fiber plan|500 meg broadband package|internet and TV bundle|home internet plus mobile bundle",
        price: "$39.99 a month|$49 a month for the first year|three months free|$20 less than you pay now",
        time: "tomorrow morning|this Saturday|Thursday afternoon|early next week",
        intro: "",
        pitch: "we've just brought our {p} to your street, {m}, and I wanted to see if you'd like to upgrade.|we're running a deal on our {p}, {m}, for existing customers, can I tell you about it?|your current contract is about to end, and switching to our {p} would be {m}.",
        qa: "Is it reliable in the evenings?>It's full fiber, so no slowdowns at peak times.|Is there an installation fee?>Installation's free and the router's included.|How long is the contract?>Twelve months, and you can leave anytime after that.|What about my current provider?>We'll handle the switch for you.",
        next: "Great, I'll book an engineer for {t}.>Okay, someone'll be home {t}./Sure, have them call first./Great, send the link./Cool, thanks.|Perfect, I'll text you a link to confirm, and the install is {t}.>Okay, someone'll be home {t}./Sure, have them call first./Great, send the link./Cool, thanks.|Done, you're booked for {t}, the technician will call ahead.>Okay, someone'll be home {t}./Sure, have them call first./Great, send the link./Cool, thanks.",
        accept: "Our internet's been awful, so yeah, let's switch.|{m}? Go on then, sign me up.|Sure, that sounds good.|Yep, {t} works for the install.",
        consider: "My contract doesn't end till spring, call me then maybe.|{m} sounds alright, I'll ask my husband.|I'll compare it with a couple of other offers.|Email me the package details and I'll look.",
        refuse: "We already have fiber, thanks.|We're moving next month, so no.|I just use my phone data, don't need it.|I'm happy with my provider.",
        more: "It's {m}, and you also get—|You're actually paying more right now than—|You could try it for a month—",
    },
    Kind {
        company: "SafeHarbor Insurance|Evergreen Life|Guardian Mutual|Pinecrest Assurance",
        item: "term life policy|personal accident policy|health plan|home insurance policy|dental plan",
        price: "from $12 a month|about $25 a month|with the first month free|$280 a year",
        time: "today|by the end of the week|tomorrow|before the end of the month",
        intro: "",
        pitch: "we have a {p}, {m}, with really broad coverage, and I'd love to walk you through it.|as an existing customer you qualify for a {p}, {m}, can I take a minute to explain?|a lot of families in your area have been picking up our {p}, {m}, could I tell you how it works?",
        qa: "What does it cover?>Hospital stays, surgery and major illness, with a low deductible.|Is claiming a hassle?>You claim online and get paid within three days.|Is there an age limit?>Anyone from 18 to 65 can apply.|Can I cancel?>Yes, there's a 30-day cooling-off period.",
        next: "Great, I'll send you the application link and cover starts {t}.>Okay, send it over./Fine, I'll read through it./Sure, email's fine./Alright.|Perfect, I'll hold the rate for you and email the documents.>Okay, send it over./Fine, I'll read through it./Sure, email's fine./Alright.|Wonderful, I'll text you the policy details to sign {t}.>Okay, send it over./Fine, I'll read through it./Sure, email's fine./Alright.",
        accept: "At {m}, sure, put me down for one.|I've been meaning to sort that out, so yes.|Okay, let's do the {p}.|Go ahead, set it up.",
        consider: "I need to read the fine print before I decide.|{m} isn't bad, but I'll talk it over with my wife.|Send me the terms and I'll get back to you.|I already have something, I'll see if I need more.",
        refuse: "I'm covered through work, thanks.|I don't buy insurance over the phone.|Insurance is a racket, no thanks.|Already got one, I'm good.",
        more: "It's {m}, and the payout is—|Most people think they won't need it until—|Just give me one minute—",
    },
    Kind {
        company: "SkillUp Academy|BrightFuture Learning|CodeCamp Online|CareerBoost Institute",
        item: "Python coding course|project management certificate|online English course|bookkeeping course|digital marketing course",
        price: "$499, down from $999|a free trial class|12 interest-free payments|a free textbook with enrollment",
        time: "this Saturday morning|tomorrow at 7 p.m.|Sunday afternoon|next Wednesday evening",
        intro: "",
        pitch: "we've just opened enrollment for our {p}, {m}, and I wondered if you or anyone at home would like to learn something new?|you asked about our {p} a while ago, and right now it comes with {m}, so I thought I'd let you know.|I'd like to tell you about our {p}, {m}, and places are limited.",
        qa: "Is it online or in person?>Live online classes, with recordings you can rewatch.|How long does it take?>About three months, two evenings a week.|Who teaches it?>All our instructors have ten-plus years in the field.|Do I get a certificate?>Yes, a certificate on completion.",
        next: "Great, I'll book you a trial class {t} and email the link.>Sounds good./Okay, {t} works for me./Sure, send the link./Cool, I'll check it out.|Perfect, I'll hold a seat for you, the course starts {t}.>Sounds good./Okay, {t} works for me./Sure, send the link./Cool, I'll check it out.|Awesome, I'll send the timetable over, first class is {t}.>Sounds good./Okay, {t} works for me./Sure, send the link./Cool, I'll check it out.",
        accept: "I've actually been wanting to learn that, sign me up.|{m}? Good deal, let's do it.|Sure, I'll try the trial class.|Yeah, go on, enroll me.",
        consider: "I need to check whether I've got the time.|It's still a bit much, I'll think on it.|I'll ask my son if he'd actually stick with it.|Can you send me the syllabus?",
        refuse: "I don't have time for classes.|My kid's already doing another program.|There's plenty of free stuff online, no thanks.|Learning's not on my list right now.",
        more: "The offer ends this week—|A lot of our students got promoted after—|The first class is completely free—",
    },
    Kind {
        company: "CloudLedger|ShopEase|TeamSync|Stockwise",
        item: "stock control app|CRM platform|bookkeeping tool|point-of-sale system|staff scheduling app",
        price: "$99 a month|a 30-day free trial|$1,200 a year|two years for the price of one",
        time: "tomorrow morning|Thursday afternoon|Monday|later this week",
        intro: "",
        pitch: "we've built a {p} for small businesses like yours, {m}, and I'd love to show you how it works.|what are you using to run the books right now? Our {p}, {m}, saves a ton of time.|we just launched a new {p}, {m}, could I book you in for a quick demo?",
        qa: "Is my data safe?>Everything's encrypted and backed up daily.|Does it work on my phone?>Yes, phone, tablet and desktop.|Can you move my old data over?>Our team handles the migration for free.|Is there training?>One-on-one onboarding, most people are up and running in a week.",
        next: "Great, I'll have a colleague give you a demo {t}.>Sure, have them call first./Okay, send the login./{t} works, I'll be at the shop./Alright.|Perfect, I'll set up your trial account and check in {t}.>Sure, have them call first./Okay, send the login./{t} works, I'll be at the shop./Alright.|Awesome, I'll email the signup link, and our tech team will call {t}.>Sure, have them call first./Okay, send the login./{t} works, I'll be at the shop./Alright.",
        accept: "Honestly our books are a mess, so let's try it.|{m} is fine, set me up.|Okay, I'll start with the trial.|Sure, come show me {t}.",
        consider: "I'd have to run it past my business partner.|What we have kinda works, so let me think.|I'd need to crunch the numbers first.|Send me a brochure and a quote first.",
        refuse: "We already have a system, not switching.|We're too small to need that.|Spreadsheets do the job for us, thanks.|Purchasing goes through head office, so no.",
        more: "It's {m}, and compared to what you're using—|Businesses like yours save hours every week—|The trial's free, no card required—",
    },
];

const EN_REMINDER: &[Kind] = &[
    Kind {
        company: "Riverside Medical|Lakeside Clinic",
        item: "check-up@Riverside Medical/Lakeside Clinic@it's already paid for/please come fasting|dental cleaning@BrightSmile Dental@it's already paid for/you can pay on the day|washer repair visit@HomeFix Appliance Service@it's covered under warranty/there's a $40 call-out fee|car service@Parkway Auto Care@there's a $20 deposit/you can pay on the day|follow-up appointment@Lakeside Clinic/Riverside Medical@please bring your medication list/it's covered by your insurance",
        price: "it's already paid for|you can pay on the day",
        time: "tomorrow at 9 a.m.|Saturday at 2 p.m.|Thursday at 10:30|this afternoon at 3",
        intro: "this is {a} calling from {c}|it's {a} at {c}",
        pitch: "I'm calling to confirm your {p} {t}, {m}, does that time still work?|just a reminder that your {p} is booked for {t}, {m}, can we confirm?|we have you down for a {p} {t}, and I wanted to double-check with you.",
        qa: "Do I need to bring anything?>Just a photo ID and your booking reference.|How long will it take?>About an hour.|Can I reschedule if I need to?>Sure, just give us a day's notice.|Should I be there early?>Ten minutes early is fine, and for home visits we call ahead.",
        next: "Great, you're all confirmed for {t}.>Great, thanks./Okay, see you then./Thanks for the reminder./Got it.|Perfect, we'll see you {t}, you'll get a text reminder.>Great, thanks./Okay, see you then./Thanks for the reminder./Got it.|Lovely, that's locked in for {t}.>Great, thanks./Okay, see you then./Thanks for the reminder./Got it.",
        accept: "Yes, that's fine, {t}.|That time's fine, keep it.|Yep, still works.|Sure, someone will be home {t}.",
        consider: "I'm not sure yet, let me check my calendar and call you back.|I might have to work, can I let you know later today?|I'm thinking about moving it, I'll get back to you.|Let me check with my husband first.",
        refuse: "Please cancel it, I won't be needing it.|I already had it done somewhere else.|Just cancel the booking, thanks.|Don't need it anymore, it's sorted.",
        more: "Those slots are hard to get, if you cancel the next one is—|Would you like to move it rather than cancel—|Since {m}, it might be worth—",
    },
    Kind {
        company: "StarNet Fiber|Metro Broadband",
        item: "broadband plan@StarNet Fiber/Metro Broadband@$599 for another year/two months free for renewing|gym membership@Peak Fitness@$480 for another year/20% off if you renew now|car insurance@SafeHarbor Insurance@$1,240 to renew/10% off if you renew now|streaming subscription@StreamPlus@$99 for the year/20% off for another year|monthly parking permit@CityPark Parking@$150 a month/one month free for renewing",
        price: "$599 for another year|two months free for renewing",
        time: "on the 25th|next Wednesday|at the end of the month|in three days",
        intro: "",
        pitch: "your {p} expires {t}, and it's {m}, shall I renew it for you?|just a heads-up that your {p} runs out {t}, right now it's {m}, would you like to continue?|your {p} is coming up for renewal {t}, {m}.",
        qa: "Is there a discount for renewing?>Yes, existing customers get our best rate.|Can I switch to a cheaper plan?>Sure, there's a basic option as well.|What happens if I don't renew?>It'll just stop at the end of the term.|Can I do it online?>Yes, I can text you a link.",
        next: "Great, I've renewed it, you'll get a confirmation text.>Great, thanks./Okay, I'll click it./Cheers./Got it.|Perfect, I've sent the renewal link to your phone.>Great, thanks./Okay, I'll click it./Cheers./Got it.|Done, it's extended for another year.>Great, thanks./Okay, I'll click it./Cheers./Got it.",
        accept: "Yeah, renew it, {m} is fine.|Sure, go ahead for another year.|Yep, same as before.|Renew it, saves me the hassle.",
        consider: "I'll have to think about whether I still need it.|{m}? Bit steep, I'll shop around.|I'll decide closer to the date.|Let me check with the family first.",
        refuse: "Don't renew it, I'm moving away.|No, I've switched to another company.|Just let it lapse.|Too expensive, I'm not renewing.",
        more: "Renewing now gets you {m}, new customers pay—|Once it lapses the offer's gone—|You could renew for just three months—",
    },
    Kind {
        company: "City Gas|Metro Water",
        item: "gas bill@City Gas@$86 overdue/$132 due|service charge@Greenview Property Management@$1,280 outstanding/$640 due|credit card statement@Northbank Card Services@$2,350 due/a minimum payment of $75 due|water bill@Metro Water@$58 due/$64 overdue|loan repayment@QuickLend@$360 due this month/$360 two days overdue",
        price: "$86 overdue|$58 due",
        time: "the 20th|this Friday|the end of the month|next Tuesday",
        intro: "",
        pitch: "I'm calling about your {p}, there's {m}, and it needs to be paid by {t}.|a reminder that your {p} shows {m}, and the due date is {t}.|your {p} has {m}, could you please settle it by {t}?",
        qa: "Where can I pay?>Online, in the app, or at any branch.|Can I pay in installments?>Yes, I can send you an installment plan.|Why is it so high?>It includes last month's late fee.|What if I pay late?>There's a late fee and it may affect your credit.",
        next: "Thanks, I've texted you the payment link.>Okay, I'll pay today./Got it./Alright, thanks./Sure thing.|Great, please take care of it by {t}.>Okay, I'll pay today./Got it./Alright, thanks./Sure thing.|Perfect, you'll get a confirmation once it's paid.>Okay, I'll pay today./Got it./Alright, thanks./Sure thing.",
        accept: "Sure, I'll pay it right now.|Okay, I'll sort it by {t}.|Yeah, I'll take care of it today.|Right, I'll pay it.",
        consider: "That amount doesn't look right, let me check my records first.|I'll look at the statement and decide when to pay.|Can I split it? Let me think about that.|I need to see if I've got enough this month.",
        refuse: "I'm not paying that, I cancelled ages ago.|I already paid it, stop chasing me.|That charge is wrong and I won't pay it.|Nope, that's got nothing to do with me.",
        more: "If it goes past the due date there's a late fee—|You could pay part of it now—|We can also arrange an extension—",
    },
    Kind {
        company: "SwiftShip|ParcelPro",
        item: "parcel@SwiftShip/ParcelPro@$28 cash on delivery/it needs a signature|sofa@HomeGoods Delivery@it includes assembly/shipping's already paid|fridge@FastLane Logistics/HomeGoods Delivery@it includes installation/we can take the old one away|washing machine@FastLane Logistics@it includes installation/it needs a signature|bookcase@HomeGoods Delivery/ParcelPro@it includes assembly/shipping's already paid",
        price: "shipping's already paid|it needs a signature",
        time: "this afternoon between 2 and 4|tomorrow morning|around 6 this evening|Thursday at 10",
        intro: "this is {a}, your driver from {c}|it's {a} at {c}",
        pitch: "your {p} is due to arrive {t}, {m}, will someone be home?|we've got a {p} for you {t}, {m}, is that okay?|just confirming delivery of your {p} {t}, {m}.",
        qa: "Can you leave it with a neighbor?>For small parcels, yes.|Can you come later in the evening?>Sure, up until 8 p.m.|Is installation extra?>No, installation's included.|Will you carry it upstairs?>Yes, we bring it to the room you want.",
        next: "Great, we'll see you {t}.>Okay, I'll be in./Sure, have them call./Cheers, thanks./Great.|Perfect, the driver will call when they're close.>Okay, I'll be in./Sure, have them call./Cheers, thanks./Great.|Lovely, I've noted that, delivery {t}.>Okay, I'll be in./Sure, have them call./Cheers, thanks./Great.",
        accept: "Yep, I'll be home, bring it over.|{t} is fine.|Sure, bring it up.|Yeah, just leave it at the door if I don't answer.",
        consider: "Not sure I'll be home, let me check and call you back.|I'll see if my neighbor can take it in.|I might need to change the address, let me think.|Let me check my schedule for that day.",
        refuse: "I returned that already, I don't want it.|I never ordered that, refuse it.|Send it back, I don't want it anymore.|I cancelled that order.",
        more: "It's already out for delivery, and returns cost—|Maybe we could change the time—|We can leave it at the front desk—",
    },
];

const EN_SURVEY: &[Kind] = &[
    Kind {
        company: "HomeFix Appliance Service|Skyline Telecom",
        item: "the air conditioner installation last week@HomeFix Appliance Service|your recent broadband repair@StarNet Fiber Support/Skyline Telecom|your last visit@BrightSmile Dental/Lakeside Clinic|your recent delivery@SwiftShip Customer Care/ParcelPro|your visit to our store@Skyline Telecom/StarNet Fiber",
        price: "it'll take about a minute|just two or three questions|it won't take long|about two minutes",
        time: "last week|a few days ago|this month|recently",
        intro: "this is {a}, following up for {c}|I'm {a}, calling from {c}",
        pitch: "we're doing a quick follow-up on {p}, {m}, is now okay?|could you rate {p} for us? {m}.|we'd love your feedback on {p}, {m}, do you have a moment?",
        qa: "How long is this?>Oh, {m}.|Are you gonna sell me something?>No, it's only feedback.|Is it anonymous?>Yes, your answers stay confidential.",
        next: "Great. On a scale of 1 to 5, how satisfied were you with {p}?>Pretty happy, I'd give it a 5./A 4, I guess, they were a bit late./Meh, a 3./Solid 5, no complaints.|Thanks. How would you rate the staff's friendliness?>They were friendly, no complaints./Very polite, top marks./They were alright.|Great, is there anything we could have done better?>Just be on time next time./Nope, it was all good./Cheaper prices wouldn't hurt.",
        accept: "Sure, go ahead.|Okay, but quickly.|Yeah, no problem.|Sure thing, shoot.",
        consider: "Send me the survey and I'll do it later.|Just text me the link, I'll see.|Email it over, I'll see if I get to it.|Maybe, send me a link.",
        refuse: "No need, everything was fine.|I don't do surveys, thanks.|No.|Honestly the service was bad and I'd rather not talk about it.",
        more: "It's really quick, {m}—|Your feedback really helps us—|There's a small thank-you gift—",
    },
    Kind {
        company: "Civic Research Group|Metro Polling|Community Services Office|Opinion Works",
        item: "community services survey|survey on how people get around town|household spending survey|recycling habits survey",
        price: "five questions|about three minutes|a $10 gift card when you finish|only two minutes",
        time: "today|this week|this month|recently",
        intro: "this is {a}, an interviewer with {c}|I'm {a} from {c}",
        pitch: "we're running a short {p}, {m}, would you take part?|I'd like to invite you to join a {p}, {m}, do you have a moment?|we're conducting a {p} on behalf of the city, {m}, could I ask you a few things?",
        qa: "Do you need my personal details?>No, it's completely anonymous.|What's it for?>The results help plan local services.|Do I really get the gift card?>Yes, within 24 hours.",
        next: "Great. Which age group are you in?>Thirty-something./Forties./Mid-twenties.|Thanks. How long have you lived in the area?>Almost ten years./Five or six years./All my life, pretty much.|Great, how many people live in your household?>Four of us./Three, me, my wife and our kid./Just me.",
        accept: "Sure, go ahead.|Okay, I've got a few minutes.|Yeah, why not.|Alright, shoot.",
        consider: "Send me a link and I'll do it when I can.|What's it about? I'll look at it first.|Text me the questionnaire.|Maybe later, email it.",
        refuse: "No thanks, I don't do surveys.|Not taking part, sorry.|Nope.|I'd rather not share that.",
        more: "It's anonymous, {m}—|It only takes a few minutes—|And there's a gift card—",
    },
];

fn kinds(domain: Domain, zh: bool) -> &'static [Kind] {
    match (domain, zh) {
        (Domain::Recruiting, true) => ZH_RECRUITING,
        (Domain::Sales, true) => ZH_SALES,
        (Domain::ServiceReminder, true) => ZH_REMINDER,
        (Domain::Survey, true) => ZH_SURVEY,
        (Domain::Recruiting, false) => EN_RECRUITING,
        (Domain::Sales, false) => EN_SALES,
        (Domain::ServiceReminder, false) => EN_REMINDER,
        (Domain::Survey, false) => EN_SURVEY,
    }
}

const ZH_SURNAMES: &str =
    "王|李|张|刘|陈|杨|黄|赵|吴|周|徐|孙|马|朱|胡|郭|何|林|罗|高|郑|梁|谢|宋|唐|许|韩|冯|邓|曹";
const ZH_GIVEN_M: &str = "建国|志强|伟|磊|海涛|俊杰|浩然|德明|文博|子豪|国栋|小军";
const ZH_GIVEN_F: &str = "丽|秀英|静|婷婷|雪梅|晓燕|佳怡|欣然|美玲|慧敏|丹丹|桂兰";
const ZH_AGENTS: &str = "小李|小王|小张|小陈|小刘|小赵|小周|小孙|小杨|小吴|小林";
const EN_SURNAMES: &str = "Smith|Johnson|Brown|Miller|Davis|Wilson|Taylor|Clark|Lewis|Walker|Hall|Young|Patel|Nguyen|Garcia|O'Brien|Murphy|Chen";
const EN_GIVEN_M: &str = "David|James|Michael|Robert|Daniel|Chris|Kevin|Tom|Ryan|Mark|Luis|Sam";
const EN_GIVEN_F: &str =
    "Sarah|Emily|Jessica|Laura|Megan|Rachel|Olivia|Hannah|Kate|Amy|Maria|Linda";
const EN_AGENTS: &str = "Emma|Jake|Priya|Liam|Sophie|Marcus|Chloe|Ben|Nina|Omar|Grace|Tyler";

/// The values a dialogue's templates are filled with, by key: `{a}` the agent, `{c}` the
/// company, `{n}` how the customer is addressed, `{f}`, `{s}`, `{g}` the wanted customer's full
/// name, surname and given name, `{o}` someone else with that surname (who answers a wrong
/// number), `{x}` the surname with a title ("王先生", "Mr. Miller"), `{p}` the item, `{m}` the
/// price, `{t}` the time.
struct Slots(Vec<(&'static str, String)>);

impl Slots {
    fn new(rng: &mut Rng, zh: bool, kind: &Kind) -> Slots {
        let male = rng.chance(50);
        let (surnames, given, agents) = match (zh, male) {
            (true, true) => (ZH_SURNAMES, ZH_GIVEN_M, ZH_AGENTS),
            (true, false) => (ZH_SURNAMES, ZH_GIVEN_F, ZH_AGENTS),
            (false, true) => (EN_SURNAMES, EN_GIVEN_M, EN_AGENTS),
            (false, false) => (EN_SURNAMES, EN_GIVEN_F, EN_AGENTS),
        };
        let s = rng.alt(surnames);
        let (g, h) = rng.two(given);
        let title = match (zh, male) {
            (true, true) => "先生",
            (true, false) => "女士",
            (false, true) => "Mr. ",
            (false, false) => "Ms. ",
        };
        let (f, o, x) = if zh {
            (format!("{s}{g}"), format!("{s}{h}"), format!("{s}{title}"))
        } else {
            (
                format!("{g} {s}"),
                format!("{h} {s}"),
                format!("{title}{s}"),
            )
        };
        let n = match (zh, rng.below(5)) {
            (true, 0) | (false, 1) => f.clone(),
            (true, 1) => format!("{f}{title}"),
            (false, 0) => g.to_string(),
            _ => x.clone(),
        };
        let mut item = rng.alt(kind.item).split('@');
        let p = item.next().unwrap_or_default();
        let c = match item.next() {
            Some(companies) => rng.alt_by(companies, '/'),
            None => rng.alt(kind.company),
        };
        let m = match item.next() {
            Some(prices) => rng.alt_by(prices, '/'),
            None => rng.alt(kind.price),
        };
        let (a, t) = (rng.alt(agents), rng.alt(kind.time));
        let fixed = [
            ("a", a),
            ("c", c),
            ("s", s),
            ("g", g),
            ("p", p),
            ("m", m),
            ("t", t),
        ];
        let mut slots: Vec<(&'static str, String)> = vec![("n", n), ("f", f), ("o", o), ("x", x)];
        slots.extend(fixed.map(|(k, v)| (k, v.to_string())));
        Slots(slots)
    }

    fn get(&self, key: &str) -> &str {
        self.0
            .iter()
            .find(|(k, _)| *k == key)
            .map_or("", |(_, v)| v)
    }

    fn set(&mut self, key: &str, value: String) {
        if let Some(slot) = self.0.iter_mut().find(|(k, _)| *k == key) {
            slot.1 = value;
        }
    }

    /// `template` with its `{key}`s replaced.
    fn fill(&self, template: &str) -> String {
        let mut out = String::with_capacity(template.len() + 32);
        let mut rest = template;
        while let Some(i) = rest.find('{') {
            out.push_str(&rest[..i]);
            let after = &rest[i + 1..];
            match after.find('}') {
                Some(j) => {
                    out.push_str(self.get(&after[..j]));
                    rest = &after[j + 1..];
                }
                None => {
                    out.push_str(after);
                    rest = "";
                }
            }
        }
        out.push_str(rest);
        out
    }
}

const GREETING: Bi = Bi {
    zh: "您好，|{n}您好，|喂，您好，|打扰一下，|您好{n}，|{n}，您好，",
    en: "Hi {n}, |Hello, |Good morning, |Hi there, |Good afternoon {n}, |Hey {n}, ",
};
const INTRO: Bi = Bi {
    zh: "我是{c}的{a}|我这边是{c}的{a}|这里是{c}，我是{a}|我是{c}的工作人员{a}",
    en: "this is {a} from {c}|my name's {a}, calling from {c}|it's {a} with {c}|{a} here from {c}",
};
const GREET_ASK: Bi = Bi {
    zh: "您好，请问是{n}吗？|喂，您好，是{n}吧？|您好，请问您是{n}本人吗？|喂，请问是{n}吗？|{n}您好，是您本人吗？",
    en: "Hi, is this {n}?|Hello, am I speaking with {n}?|Hi there, could I speak to {n}, please?|Good morning, is {n} available?|Hey, is that {n}?",
};
const CONFIRM: Bi = Bi {
    zh: "是我，哪位？|嗯，你说。|对，什么事？|我是，你哪里？|是，啥事？|嗯，是我。|对对，你是？|是我，有啥子事？|是的呀，侬有啥事体？|嗯呐，咋了？",
    en: "Yes, speaking.|Yeah, that's me. Who's this?|Speaking.|Yep, what's this about?|That's me.|Uh-huh, go ahead.|Yeah, who's calling?|Yes. Who is this?",
};
const HELLO: Bi = Bi {
    zh: "喂？|喂，哪位？|喂，你好。|哪位？",
    en: "Hello?|Yeah, hello?|Hi, who's this?|Hello, who is it?",
};
const ANNOYED_PREFIX: Bi = Bi {
    zh: "又是推销的吧？|你们怎么有我电话的？|怎么又是你们？|啧，",
    en: "Another one of these calls? |How'd you get my number? |Ugh. |You lot again? ",
};
const ACCEPT: [Bi; 3] = [
    Bi {
        zh: "可以可以，那就麻烦你安排一下吧。|好啊，那就这么定了。|行啊，挺好的，就按你说的办。|要得要得，你帮我弄一下嘛。|得嘞，那就这么办。|中，没问题，你安排吧。|好的呀，谢谢侬。",
        en: "Oh, that sounds great, count me in.|Yeah, I'd love that, let's do it.|Sure thing, go ahead and set it up.|Perfect timing actually, let's go ahead.|Well, y'all caught me on a good day. Let's do it.",
    },
    Bi {
        zh: "行。|嗯，可以。|那行吧，你安排。|可以，接下来怎么弄？|嗯，那就这样吧。|好，就这么办。",
        en: "Sure.|Okay, let's go ahead.|Yeah, that works.|Fine, set it up.|Alright, what's the next step?|Yep, I reckon that'll do.",
    },
    Bi {
        zh: "行行行，你快点说，我赶时间。|可以是可以，别绕弯子，直接说咋弄。|行吧行吧，那就弄吧，别磨叽了。|嗯，知道了，赶紧的。",
        en: "Fine, fine, just make it quick.|Yeah, okay, but don't waste my time. What do I do?|Alright, put me down, but I'm in a hurry.|Whatever, yes, go ahead.",
    },
];
const CONSIDER: [Bi; 3] = [
    Bi {
        zh: "听着还不错，不过我得再想想，过两天给你答复行吗？|挺好的，但我得跟家里人商量一下。|你先把详细资料发我看看吧，我再决定。|嗯……有点心动，我考虑考虑哈。",
        en: "Sounds good, but I'd like to think it over. Can I get back to you?|Could you send me the details? I'll have a look tonight.|I'll need to talk to my wife first, but it sounds decent.|Hmm, tempting. Let me sleep on it.",
    },
    Bi {
        zh: "我考虑一下吧。|你发个短信给我吧，我看看再说。|这个我现在定不了，回头再说吧。|晓得了，你把资料发过来嘛，我看了再说。|嗯，我再比较比较。|那你加我微信，把详情发我。",
        en: "I'll think about it.|Send me an email with the details and I'll take a look.|Not sure yet. Maybe.|I need to run it by my partner.|Let me compare a few options first.|I dunno, gimme a few days.",
    },
    Bi {
        zh: "说得都挺好，谁知道真的假的，我再看看吧。|你们这种电话我接多了，先发资料，我看了再说。|别催嘛，我又没说不要，让我想想。",
        en: "Everyone says that. Send it in writing and I'll see.|Don't push me, mate, I'll decide when I've read it.|I haven't said no, I just need time. Email it.",
    },
];
const BUSY: [Bi; 3] = [
    Bi {
        zh: "不好意思啊，我现在在开会，晚点再打给我好吗？|哎呀，我这会儿正开车呢，你下午再打过来吧。|我在上班，不太方便说话，晚上七点以后可以吗？|我在地铁上，信号不好，回头再聊哈。",
        en: "Sorry, I'm in a meeting right now. Could you call me back this afternoon?|Oh, I'm driving at the moment, can you try me later?|I'm just putting the kids to bed, can you ring back tomorrow?|Bad timing, sorry, I'm at work. After six would be better.",
    },
    Bi {
        zh: "现在不方便，晚点再说。|在忙，你过一个小时再打。|我在外面，听不清，明天再打吧。|我正吃饭呢，等会儿再说嘛。|在开车，回头联系。|侬晚点再打过来好伐，我现在忙。",
        en: "Can't talk now. Call back later.|I'm busy right now, try me in an hour.|I'm on the other line, call me back.|Not a good time, I'm gonna have to call you back.|I'm at the doctor's, ring me tomorrow.",
    },
    Bi {
        zh: "我在忙！你晚点再打行不行？|没看我在上班吗，下班了再说。|孩子在闹，没空，改天再打。|正忙着呢，啥子事晚点再说嘛。",
        en: "I'm at work, I can't do this now. Later.|Mate, I'm driving. Call back later.|Seriously, I'm in the middle of something. Try tomorrow.",
    },
];
const REFUSE: [Bi; 3] = [
    Bi {
        zh: "谢谢你啊，不过我暂时真的不需要。|不好意思，这个我用不上，你问问别人吧。|心领了，我这边已经有了，谢谢。|谢谢，不用了，你们也挺辛苦的。",
        en: "That's kind of you, but I'll pass, thanks.|Thanks for calling, but it's not for me.|I appreciate it, but we're all set.|Thanks, but I'm happy with what I've got.",
    },
    Bi {
        zh: "不需要，谢谢。|不用了。|没兴趣。|我不考虑这个。|这个我不要，你不用再打了。|俺不要，谢谢。|莫得兴趣，不要了。",
        en: "No thanks.|Nah.|Not for me.|I'll pass.|We don't need that, thanks.|Yeah nah, not gonna happen.|I'm good, thanks.",
    },
    Bi {
        zh: "不要不要，别再打了！|你们怎么又打来了？说了不需要！|把我号码删了，谢谢。|烦不烦啊，不要！|我正忙着呢，不需要，挂了。",
        en: "No. Take me off your list.|How many times do I have to say no? Stop calling.|Not a chance. Goodbye.|Y'all keep calling me. I said no.|I'm busy and I don't want it. Bye.",
    },
];

/// Busy, and refusing anyway.
const BUSY_REFUSE: Bi = Bi {
    zh: "我在忙，而且我也不需要，以后别打了。|正开会呢，不需要，别再打了。|没空，也不想要，挂了。|我在上班，这种东西我不要，别打了。",
    en: "I'm at work and I don't want it. Don't call back.|I'm busy, and the answer's no anyway.|Driving, and no thanks. Don't ring again.|No time, no need. Bye.",
};
const REFUSE_AGAIN: Bi = Bi {
    zh: "真不用了，谢谢。|我说了不需要。|再好也不要。|不用了，挂了啊。|莫得用，莫说了。|侬不要再讲了，阿拉不要。",
    en: "Really, no thanks.|I said no.|Still no, sorry.|Look, I'm gonna hang up now.|No means no, mate.|I just don't need it.",
};
const RETAIN: Bi = Bi {
    zh: "了解，那方便问一下是什么原因吗？|您先别急着挂，就占用您一分钟——|好的，那如果以后有需要——",
    en: "Can I just ask what's putting you off?|Before you go, just one minute—|Sure, and if you ever change your mind—",
};
const HESITATE: Bi = Bi {
    zh: "嗯……这个……|呃……让我想想……|这个嘛……怎么说呢……|唔……",
    en: "Um... I dunno...|Hmm... let me think...|Well... uh...|Gosh, I'm not sure...",
};
const PROBE: Bi = Bi {
    zh: "您是有什么顾虑吗？可以跟我说说。|没关系，您有什么问题都可以问我。|不着急，您慢慢想。",
    en: "Is anything holding you back?|No rush. Any questions I can answer?|Take your time.",
};
const DECIDE_YES: Bi = Bi {
    zh: "……算了，试试就试试，你安排吧。|……嗯，行，那就这么定了。|……好吧，那就弄吧。|……要得，就这么办嘛。",
    en: "...Oh, why not. Let's do it.|...Okay, yeah, go on then.|...Alright, I'm in.|...Sure, let's give it a go.",
};
const DECIDE_NO: Bi = Bi {
    zh: "……想了想还是算了，不需要，谢谢。|……还是不要了吧。|……算了算了，不弄了。|……不了，真不用。",
    en: "...No, actually, I'll pass. Thanks.|...Nah, I've thought about it, it's a no.|...I'm gonna say no, sorry.|...Nope. Not for me.",
};
const ACK: Bi = Bi {
    zh: "好的。|行，知道了。|嗯嗯，好。|中。|得嘞。|要得。|晓得了。|OK。",
    en: "Okay.|Got it.|Sure.|Sounds good.|Yep.|Alright, great.",
};
const CLOSE_YES: Bi = Bi {
    zh: "好的，感谢您的配合，祝您生活愉快，再见！|那就这样说定了，有问题随时联系我。|好的，谢谢您，再见。|好嘞，那就先这样，打扰您了。",
    en: "Great, thanks so much, have a great day.|Perfect, that's all sorted. Call us if anything comes up.|Awesome, talk soon!|Thanks for your time, bye now.",
};
const CLOSE_THANKS: Bi = Bi {
    zh: "好的，感谢您的宝贵意见，祝您生活愉快，再见！|好的，就这些问题，谢谢您的配合。|好的，谢谢您的反馈，打扰了。",
    en: "That's all, thanks so much for your feedback!|Great, thanks for your time, have a good day.|Thanks, that's really helpful. Bye now.",
};
const SEND_OFFER: Bi = Bi {
    zh: "没问题，那我加您微信把详细资料发给您，您看完再决定？|好的，那我先把资料短信发您，您有空看看。|可以的，我把介绍发您手机上，您慢慢看。",
    en: "No problem, I'll email you the details so you can look them over.|Sure, can I text you a link with everything?|Of course. What's the best email to send it to?",
};
const SEND_REPLY: Bi = Bi {
    zh: "行，你发吧，我看了再说。|嗯，发过来吧。|可以，就加这个手机号。|得嘞，发过来我瞅瞅。",
    en: "Yeah, send it over.|Sure, the one you've got on file.|Text is fine.|Okay, I'll have a look.",
};
const WORRY_ASK: Bi = Bi {
    zh: "理解，您主要是顾虑哪方面呢？|明白，您还有什么不清楚的地方吗？",
    en: "Totally understand. Anything in particular holding you back?|Fair enough. Is there anything I can clear up for you?",
};
const WORRY_REPLY: Bi = Bi {
    zh: "也没啥，就是想再看看。|时间上还得安排一下。|说不好，我再琢磨琢磨。|我得先问问家里人。",
    en: "Nothing really, I just want to look around.|Just the timing, I reckon.|I need to check with my family first.|Hard to say, I just need a bit of time.",
};
const CALLBACK_OFFER: Bi = Bi {
    zh: "可以的，那我过两天再跟您联系，您看行吗？|好的，那我周五再给您打个电话？",
    en: "Sure, shall I give you a call later this week?|No worries, can I check back with you on Friday?",
};
const CALLBACK_REPLY: Bi = Bi {
    zh: "行，到时候再说。|可以，过两天吧。|嗯，周五吧。|到时候我再联系你也行。",
    en: "Yeah, Friday's fine.|Sure, later in the week.|Okay, maybe.|Or I'll call you, either way.",
};
const CLOSE_MAYBE: Bi = Bi {
    zh: "好的，那就不打扰您了，有问题随时联系我。|好嘞，那我们保持联系，祝您生活愉快。|好的，感谢您的接听，再见。",
    en: "Great, talk soon. Have a good day!|Thanks for your time. Just call us if you've got questions.|Alright, I'll be in touch. Bye now.",
};
const WHEN_ASK: Bi = Bi {
    zh: "好的，那您大概什么时候方便？我再打给您。|不好意思打扰了，那您看几点给您回电合适？|好的好的，那我晚点再联系您？",
    en: "No problem, when's a better time to call?|Sorry about that. What time works for you?|Sure, should I try again this evening?",
};
const WHEN_REPLY: Bi = Bi {
    zh: "下午四点以后吧。|明天上午吧。|晚上八点后。|过一个小时再打。|周末吧，平时都忙。|晚点吧，行了先挂了。",
    en: "After four.|Tomorrow morning.|Evening's better, after seven.|Give it an hour.|Try me on the weekend.|Later, okay? Gotta go.",
};
const CLOSE_LATER: Bi = Bi {
    zh: "好的，那我到时候再给您打过来，您先忙。|好的，不打扰您了，稍后联系。|明白，那我们改时间再聊，再见。",
    en: "Will do, I'll call you back then. Bye!|Sure, sorry to bother you. Talk later.|Got it, I'll try again then.",
};
const CLOSE_NO: Bi = Bi {
    zh: "好的，打扰您了，祝您生活愉快。|明白了，那不打扰您了，再见。|好的，我们这边备注一下，以后不再打扰您。|好的，感谢您的接听。|好的，不好意思打扰了。",
    en: "Understood, sorry to bother you. Have a good day.|No problem, I'll take you off our list.|Alright, thanks for your time.|Okay, bye now.",
};
const BYE: [Bi; 3] = [
    Bi {
        zh: "好的，拜拜。|谢谢啊，再见。|嗯嗯，拜拜。|好嘞，辛苦了。",
        en: "Thanks, bye.|Cheers.|Okay, bye-bye.|Alright, cheers mate.",
    },
    Bi {
        zh: "嗯，再见。|好。|拜拜。|行，挂了啊。",
        en: "Bye.|Okay.|See ya.|Yep, bye.",
    },
    Bi {
        zh: "嗯。|（挂断）|行了行了，挂了。|知道了。",
        en: "Yeah.|[hangs up]|Whatever. Bye.|Yeah, yeah.",
    },
];
const NO_MORE_CALLS: Bi = Bi {
    zh: "别再打了。|以后别打了啊。|把我号码删了。|（挂断）",
    en: "Don't call again.|Take me off your list.|And don't ring back.|[hangs up]",
};
const WRONG: Bi = Bi {
    zh: "不是，你打错了。|你找谁？这里没有叫{f}的。|我是姓{s}，但我叫{o}，不是{g}。|我也姓{s}，不过你找的{f}不是我。|打错了吧，我不认识什么{f}。|这个号码我刚办的，之前是谁的我不知道。|侬打错了，阿拉这里没这个人。|啥子{g}哦，你打错了嘛。|不是本人，你们打错好几回了！|{f}？他们家早搬走了，这号现在是我的。",
    en: "No, sorry, wrong number.|There's no {f} here.|This is {o}. Wrong {s}, I'm afraid, not {g}.|I'm a {s} too, but I'm not {g}. Different person.|Who? Never heard of them.|I just got this number last month, must've been someone else's.|Nope, you've got the wrong number, mate.|Y'all keep calling for {g}. Nobody by that name lives here.",
};
const WRONG_PITCH: Bi = Bi {
    zh: "你打错了吧？我从来没办过这个。|你找谁？这号码不是你们要找的人。|我不是你们客户，打错了。|啥子哦，你找错人了嘛。",
    en: "Wrong number, mate. I've never dealt with {c}.|You've got the wrong person, I'm not a customer of yours.|Who are you looking for? This isn't their number.|I think y'all have the wrong number.",
};
const SURNAME_ASK: Bi = Bi {
    zh: "您好，请问是{x}吗？|喂，{x}您好，是您吧？",
    en: "Hi, is this {x}?|Hello, am I speaking with {x}?",
};
const SURNAME_YES: Bi = Bi {
    zh: "我是姓{s}，你哪位？|对，我姓{s}，什么事？|嗯，姓{s}，咋了？",
    en:
        "Yeah, this is {s}. Who's calling?|Yes, {s} here. What's this about?|That's me, who's this?",
};
const FOR_FULL: Bi = Bi {
    zh: "请问您是{f}本人吗？|我们找的是{f}，是您本人吧？|想找{f}确认点事情。",
    en: "I'm looking for {f}, is that you?|Am I speaking with {f}?|I was hoping to reach {f}.",
};
const SURNAME_WRONG: Bi = Bi {
    zh: "不是啊，我叫{o}，你找错人了。|我是姓{s}，但不叫{g}，你打错了。|{f}？不是我，同姓而已。|哦，那你找错人了，我是{o}。",
    en: "No, I'm {o}. Wrong {s}, I'm afraid.|Oh, no, I'm {o}, not {g}.|Nope, same last name, different person.|Ha, you've got the wrong {s}. I'm {o}.",
};
const WRONG_FOLLOW: Bi = Bi {
    zh: "啊，不好意思，请问您认识{f}吗？|这个号码是{f}之前登记的，您知道怎么联系到{f}吗？|抱歉，请问这是{f}的号码吗？",
    en: "Oh, sorry. Do you happen to know {f}?|I apologize. This number was listed for {f}, is that right?|Sorry about that. Is this the number for {f}?",
};
const WRONG_REPLY: Bi = Bi {
    zh: "不认识。|不知道，没这个人。|不认识，别再打了。|这号我用了好几年了，没听说过。|不晓得，你们查清楚再打。",
    en: "Nope.|No idea, sorry.|No, it's not. Please update your records.|Never heard of them.",
};
const WRONG_CLOSE: Bi = Bi {
    zh: "不好意思，打扰您了。|抱歉，可能是登记错了，我们会更新信息，打扰了。|好的，实在抱歉，再见。",
    en: "Sorry for the trouble, have a good day.|My apologies, I'll update our records.|Sorry to bother you, bye.",
};
const CARRIER: Bi = Bi {
    zh: "您好，您拨打的号码是空号，请查证后再拨。|您拨打的电话已停机。|您拨打的用户正在通话中，请稍后再拨。|您拨打的电话暂时无法接通，请稍后再拨。|您拨打的用户已关机。|对不起，您拨打的号码已暂停服务。|您拨打的电话已停机。Sorry, the number you dialed is out of service.|您拨打的号码是空号。Sorry, the number you dialed does not exist.",
    en: "We're sorry, the number you have reached is not in service. Please check the number and try again.|The number you have dialed has been disconnected.|The wireless customer you are calling is not available. Please try your call again later.|The person you are calling is on another call. Please try again later.|Your call cannot be completed as dialed.|The subscriber you have dialed is currently unavailable.",
};
const VOICEMAIL: Bi = Bi {
    zh: "您好，我现在不方便接听电话，请在提示音后留言。|您好，您所拨打的用户暂时无法接听，请在“嘀”声后留言，留言完毕请挂机。|您好，我是机主的智能助理，机主现在不方便接听，请问您有什么事？|您好，这里是{g}的语音信箱，有事请留言。",
    en: "Hi, you've reached {g}. I can't come to the phone right now, leave a message after the beep.|The person you are trying to reach is unavailable. At the tone, please record your message.|Hey, it's {g}, leave a message!|Hi, this is {g}'s call screening assistant. Can I ask who's calling and why?",
};
const VM_MESSAGE: Bi = Bi {
    zh: "{n}您好，我是{c}的{a}，有事想跟您沟通，方便的时候请回个电话，谢谢。|您好，这里是{c}，找{n}的，我们晚点再打给您。|喂，{n}您好，我是{a}，稍后再联系您。|你好，我是{c}的，麻烦转告机主有空回个电话，谢谢。",
    en: "Hi {n}, this is {a} from {c}. Please give us a call back when you get a chance. Thanks!|Hello, this message is for {n}. It's {a} at {c}, I'll try you again later.|Hi, it's {a} from {c} calling for {n}. No rush, I'll call back another time.",
};
const IVR: Bi = Bi {
    zh: "您好，欢迎致电恒信科技，业务咨询请按1，售后服务请按2，人工服务请按0。|欢迎致电宏远食品，请直拨分机号，查号请拨0。|您好，您拨打的是企业总机，现在是非工作时间，请在工作日上午九点至下午六点来电。|您好，欢迎致电，您的来电将转接至人工服务，请稍候……|您好，您的电话已接入来电秘书，请在提示音后说明来意。",
    en: "Thank you for calling Lakeside Dental. For appointments, press 1. For billing, press 2. To speak to a receptionist, press 0.|Welcome to Northgate Hardware. Please listen carefully as our menu options have changed. Press 1 for store hours.|You have reached the main office. If you know your party's extension, dial it now.|Thank you for holding. All of our representatives are busy. Your call is important to us.",
};
const SILENCE: Bi = Bi {
    zh: "（无声）|（无人应答）|（只有背景噪音）",
    en: "[silence]|[no response]|[background noise]",
};
const HELLO_HELLO: Bi = Bi {
    zh: "喂？喂？|喂？喂？听不见，挂了啊。|喂……喂？",
    en: "Hello? Hello?|Hello? ... I can't hear you.|Hello...? Hello?",
};
const HUNG_UP: Bi = Bi {
    zh: "（对方已挂断）|（通话结束）|（嘟嘟嘟）",
    en: "[call ended]|[hangs up]|[line goes dead]",
};
const PROBE_LINE: Bi = Bi {
    zh: "喂，您好？|喂？能听到吗？|您好，请问有人吗？|喂？喂？听得到我说话吗？|喂，您好，请问是{n}吗？|您好，我是{c}的{a}，能听到吗？",
    en: "Hello?|Hello, can you hear me?|Hi, is anyone there?|Hello? Hello?|Hi, is this {n}?|Hello, this is {a} from {c}, can you hear me?",
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    Agent,
    Customer,
}

/// A dialogue being composed.
struct Gen {
    rng: Rng,
    zh: bool,
    labelled: bool,
    /// 0 friendly, 1 neutral, 2 annoyed.
    mood: usize,
    kind: &'static Kind,
    slots: Slots,
    turns: Vec<(Who, String)>,
}

/// `s` with its first letter in upper case.
fn cap(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// The first clause of `pitch`, broken off by an interruption.
fn cut(pitch: &str, zh: bool) -> String {
    let (comma, dash) = if zh { ('，', "——") } else { (',', "—") };
    let head = pitch.split(comma).next().unwrap_or(pitch);
    format!("{}{dash}", head.trim_end_matches(['。', '？', '.', '?']))
}

impl Gen {
    fn chance(&mut self, percent: u64) -> bool {
        self.rng.chance(percent)
    }

    fn pick(&mut self, pool: &Bi) -> &'static str {
        self.rng.alt(if self.zh { pool.zh } else { pool.en })
    }

    fn line(&mut self, pool: &Bi) -> String {
        let t = self.pick(pool);
        self.slots.fill(t)
    }

    fn push(&mut self, who: Who, text: String) {
        let text = if self.zh {
            text
        } else {
            cap(&text).replace(".m..", ".m.")
        };
        self.turns.push((who, text));
    }

    fn say(&mut self, who: Who, pool: &Bi) {
        let l = self.line(pool);
        self.push(who, l);
    }

    /// The agent says something and the customer answers.
    fn pair(&mut self, agent: &Bi, customer: &Bi) {
        self.say(Who::Agent, agent);
        self.say(Who::Customer, customer);
    }

    /// The customer hesitates, the agent waits, the customer decides.
    fn hesitate(&mut self, decision: &Bi) {
        self.say(Who::Customer, &HESITATE);
        self.pair(&PROBE, decision);
    }

    fn maybe(&mut self, percent: u64, who: Who, pool: &Bi) {
        if self.chance(percent) {
            self.say(who, pool);
        }
    }

    /// One alternative of a field of the dialogue's kind.
    fn say_kind(&mut self, who: Who, field: &'static str) {
        let t = self.rng.alt(field);
        let l = self.slots.fill(t);
        self.push(who, l);
    }

    /// The customer's answer: from the kind's `field` (`kind_pct` %) or the mood's pool, an
    /// annoyed customer sometimes grumbling first.
    fn respond(&mut self, field: &'static str, pools: &[Bi; 3], kind_pct: u64, grumble: bool) {
        let t = if self.chance(kind_pct) {
            self.rng.alt(field)
        } else {
            self.pick(&pools[self.mood])
        };
        let mut l = self.slots.fill(t);
        if grumble && self.mood == ANNOYED && self.chance(35) {
            l = format!("{}{l}", self.pick(&ANNOYED_PREFIX));
        }
        self.push(Who::Customer, l);
    }

    fn bye(&mut self, percent: u64) {
        if self.chance(percent) {
            let pool = &BYE[self.mood];
            self.say(Who::Customer, pool);
        }
    }

    /// Who is calling, without a greeting.
    fn intro(&mut self) -> String {
        let kind = self.kind;
        let t = if !kind.intro.is_empty() && self.chance(60) {
            self.rng.alt(kind.intro)
        } else {
            self.pick(&INTRO)
        };
        self.slots.fill(t)
    }

    /// The agent's introduction and pitch, cut off when `interrupted`.
    fn intro_line(&mut self, greet: bool, interrupted: bool) -> String {
        let greeting = if greet {
            self.line(&GREETING)
        } else {
            String::new()
        };
        let intro = self.intro();
        let pitch = self.rng.alt(self.kind.pitch);
        let mut pitch = self.slots.fill(pitch);
        if interrupted {
            pitch = cut(&pitch, self.zh);
        }
        if self.zh {
            format!("{greeting}{intro}，{pitch}")
        } else {
            cap(&format!("{greeting}{intro}. {}", cap(&pitch)))
        }
    }

    /// The customer's "hello?" first, sometimes (labelled transcripts only).
    fn hello(&mut self) {
        if self.labelled {
            self.maybe(20, Who::Customer, &HELLO);
        }
    }

    /// The customer's "hello?", the agent asking for the customer or not, and the pitch.
    fn open(&mut self, interrupt_pct: u64) {
        self.hello();
        let interrupted = self.chance(interrupt_pct);
        if self.chance(45) {
            self.pair(&GREET_ASK, &CONFIRM);
            let l = self.intro_line(false, interrupted);
            self.push(Who::Agent, l);
        } else {
            let l = self.intro_line(true, interrupted);
            self.push(Who::Agent, l);
        }
    }

    /// A customer's question and the agent's answer.
    fn question(&mut self) {
        let qa = self.rng.alt(self.kind.qa);
        let (q, a) = qa.split_once('>').unwrap_or((qa, ""));
        let q = self.slots.fill(q);
        self.push(Who::Customer, q);
        if !a.is_empty() {
            let a = self.slots.fill(a);
            self.push(Who::Agent, a);
        }
    }

    fn interested(&mut self) {
        self.open(8);
        let short = match self.rng.below(10) {
            0..=3 => {
                self.question();
                self.respond(self.kind.accept, &ACCEPT, 50, false);
                false
            }
            4 | 5 => {
                self.hesitate(&DECIDE_YES);
                false
            }
            _ => {
                self.respond(self.kind.accept, &ACCEPT, 50, false);
                true
            }
        };
        let (first, second) = self.rng.two(self.kind.next);
        let asks = self.next_step(first);
        // A survey may go on to another question.
        if asks && short && self.chance(50) {
            self.next_step(second);
        }
        self.maybe(
            80,
            Who::Agent,
            if asks { &CLOSE_THANKS } else { &CLOSE_YES },
        );
        self.bye(40);
    }

    /// The agent's next step ("step>reply/reply") and the customer's reply: a question (a
    /// survey's) is always answered, other steps sometimes just acknowledged. Whether it asked.
    fn next_step(&mut self, step: &'static str) -> bool {
        let (next, replies) = step.split_once('>').unwrap_or((step, ""));
        let l = self.slots.fill(next);
        self.push(Who::Agent, l);
        let asks = next.ends_with(['?', '？']);
        if asks || self.chance(80) {
            let t = if !replies.is_empty() && (asks || self.chance(60)) {
                self.rng.alt_by(replies, '/')
            } else {
                self.pick(&ACK)
            };
            let l = self.slots.fill(t);
            self.push(Who::Customer, l);
        }
        asks
    }

    fn considering(&mut self) {
        self.open(5);
        if self.chance(35) {
            self.question();
        }
        self.respond(self.kind.consider, &CONSIDER, 50, true);
        let (offer, reply) = match self.rng.below(3) {
            0 => (&SEND_OFFER, &SEND_REPLY),
            1 => (&WORRY_ASK, &WORRY_REPLY),
            _ => (&CALLBACK_OFFER, &CALLBACK_REPLY),
        };
        self.pair(offer, reply);
        self.maybe(85, Who::Agent, &CLOSE_MAYBE);
        self.bye(35);
    }

    fn inconvenient(&mut self) {
        if self.chance(20) {
            // Busy before the agent says why they call.
            self.hello();
            self.say(Who::Agent, &GREET_ASK);
        } else {
            self.open(30);
        }
        self.respond("", &BUSY, 0, true);
        if self.chance(60) {
            self.pair(&WHEN_ASK, &WHEN_REPLY);
        }
        self.maybe(85, Who::Agent, &CLOSE_LATER);
        self.bye(30);
    }

    fn not_interested(&mut self) {
        self.open(25);
        match self.rng.below(20) {
            0..=8 => self.respond(self.kind.refuse, &REFUSE, 45, true),
            9..=12 => {
                self.respond(self.kind.refuse, &REFUSE, 45, true);
                if self.chance(60) {
                    self.say_kind(Who::Agent, self.kind.more);
                } else {
                    self.say(Who::Agent, &RETAIN);
                }
                self.say(Who::Customer, &REFUSE_AGAIN);
            }
            13 | 14 => self.hesitate(&DECIDE_NO),
            15 | 16 => {
                self.question();
                self.respond(self.kind.refuse, &REFUSE, 45, false);
            }
            _ => self.say(Who::Customer, &BUSY_REFUSE),
        }
        self.maybe(75, Who::Agent, &CLOSE_NO);
        if self.mood == ANNOYED {
            self.maybe(40, Who::Customer, &NO_MORE_CALLS);
        } else {
            self.bye(35);
        }
    }

    fn wrong_number(&mut self) {
        // The agent asks for the customer by full name: whoever answers knows who is wanted.
        let full = self.slots.get("f").to_string();
        self.slots.set("n", full);
        self.hello();
        match self.rng.below(10) {
            0..=5 => self.pair(&GREET_ASK, &WRONG),
            6..=8 => {
                // The right surname, the wrong person.
                self.pair(&SURNAME_ASK, &SURNAME_YES);
                let intro = self.intro();
                let ask = self.line(&FOR_FULL);
                let l = if self.zh {
                    format!("{intro}，{ask}")
                } else {
                    cap(&format!("{intro}. {ask}"))
                };
                self.push(Who::Agent, l);
                self.say(Who::Customer, &SURNAME_WRONG);
            }
            _ => {
                let l = self.intro_line(true, false);
                self.push(Who::Agent, l);
                self.say(Who::Customer, &WRONG_PITCH);
            }
        }
        if self.chance(45) {
            self.pair(&WRONG_FOLLOW, &WRONG_REPLY);
        }
        self.maybe(85, Who::Agent, &WRONG_CLOSE);
        self.bye(30);
    }

    fn no_conversation(&mut self) {
        match self.rng.below(6) {
            0 => {
                self.maybe(40, Who::Agent, &PROBE_LINE);
                self.say(Who::Customer, &CARRIER);
            }
            1 => {
                self.say(Who::Customer, &VOICEMAIL);
                self.maybe(60, Who::Agent, &VM_MESSAGE);
            }
            2 => {
                self.maybe(35, Who::Agent, &PROBE_LINE);
                self.say(Who::Customer, &IVR);
                self.maybe(40, Who::Agent, &PROBE_LINE);
            }
            3 => {
                self.say(Who::Agent, &PROBE_LINE);
                self.say(Who::Customer, &SILENCE);
                self.maybe(60, Who::Agent, &PROBE_LINE);
                self.maybe(40, Who::Customer, &HUNG_UP);
            }
            4 => {
                self.say(Who::Agent, &PROBE_LINE);
                self.say(Who::Customer, &HELLO_HELLO);
                self.maybe(50, Who::Agent, &PROBE_LINE);
                self.say(Who::Customer, &HUNG_UP);
            }
            _ => {
                // Only the agent speaks.
                self.say(Who::Agent, &PROBE_LINE);
                self.maybe(70, Who::Agent, &PROBE_LINE);
                self.maybe(40, Who::Agent, &PROBE_LINE);
            }
        }
    }

    /// The transcript: labelled lines, or alternating lines with the agent first (a speaker's
    /// consecutive turns joined). Labelled consecutive turns are joined too unless `keep_runs`.
    fn render(mut self, domain: Domain, keep_runs: bool) -> String {
        let sep = if self.zh { "" } else { " " };
        let mut turns: Vec<(Who, String)> = Vec::with_capacity(self.turns.len() + 1);
        if !self.labelled && self.turns.first().is_some_and(|t| t.0 == Who::Customer) {
            let hello = if self.zh { "喂？" } else { "Hello?" };
            turns.push((Who::Agent, hello.to_string()));
        }
        for (who, text) in std::mem::take(&mut self.turns) {
            match turns.last_mut() {
                Some(last) if last.0 == who && (!self.labelled || !keep_runs) => {
                    last.1.push_str(sep);
                    last.1.push_str(&text);
                }
                _ => turns.push((who, text)),
            }
        }
        if !self.labelled {
            return turns
                .into_iter()
                .map(|t| t.1)
                .collect::<Vec<_>>()
                .join("\n");
        }
        let (agent, customer, colon) = if self.zh {
            let agents = match domain {
                Domain::Recruiting => "顾问|坐席|客服",
                Domain::Sales => "销售|顾问|坐席|客服",
                Domain::ServiceReminder | Domain::Survey => "客服|坐席",
            };
            let colon = if self.chance(80) { "：" } else { ":" };
            (self.rng.alt(agents), self.rng.alt("客户|用户"), colon)
        } else {
            (
                self.rng.alt("Agent|Rep"),
                self.rng.alt("Customer|Client"),
                ": ",
            )
        };
        let label = |who: Who| if who == Who::Agent { agent } else { customer };
        let lines: Vec<String> = turns
            .into_iter()
            .map(|(who, text)| format!("{}{colon}{text}", label(who)))
            .collect();
        lines.join("\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    const N: u64 = 10_000;
    const LANGUAGES: [Language; 2] = [Language::Zh, Language::En];
    const LABELS: &str = "坐席|客服|销售|顾问|客户|用户|Agent|Rep|Customer|Client";

    fn sample(intent: Intent) -> Vec<Dialogue> {
        (0..N).map(|d| dialogue(d, intent)).collect()
    }

    fn is_labelled(line: &str) -> bool {
        LABELS.split('|').any(|l| {
            line.strip_prefix(l)
                .is_some_and(|rest| rest.starts_with(['：', ':']))
        })
    }

    #[test]
    fn intent_shares_match_the_stated_ones() {
        assert_eq!(SHARES.iter().sum::<u64>(), 1000);
        let n = 100_000;
        for (intent, share) in Intent::ALL.into_iter().zip(SHARES) {
            let got = (0..n).filter(|&d| intent_for(d) == intent).count() as f64 / n as f64;
            let (got, want) = (got * 100.0, share as f64 / 10.0);
            assert!((got - want).abs() <= 1.5, "{}: {got:.2} %", intent.name());
        }
    }

    #[test]
    fn dialogues_are_deterministic() {
        for intent in Intent::ALL {
            for d in [0, 1, 42, 7_777, u64::MAX, 0xdead_beef] {
                assert_eq!(dialogue(d, intent), dialogue(d, intent));
                assert_eq!(dialogue(d, intent).intent, intent);
            }
        }
        assert_eq!(intent_for(12_345), intent_for(12_345));
    }

    #[test]
    fn about_two_thirds_chinese() {
        for intent in Intent::ALL {
            let zh = sample(intent)
                .iter()
                .filter(|d| d.language == Language::Zh)
                .count();
            let share = zh as f64 / N as f64;
            assert!((0.55..=0.75).contains(&share), "{}: {share}", intent.name());
        }
    }

    #[test]
    fn every_domain_and_language_for_every_intent() {
        for intent in Intent::ALL {
            let seen: HashSet<_> = sample(intent)
                .iter()
                .map(|d| (d.domain, d.language))
                .collect();
            for domain in Domain::ALL {
                for language in LANGUAGES {
                    let what = (intent.name(), domain.name(), language.code());
                    assert!(seen.contains(&(domain, language)), "{what:?}");
                }
            }
        }
    }

    #[test]
    fn texts_vary() {
        for intent in Intent::ALL {
            let all = sample(intent);
            let distinct: HashSet<&str> = all.iter().map(|d| d.text.as_str()).collect();
            assert!(distinct.len() >= 300, "{}", intent.name());
            for language in LANGUAGES {
                let texts = all.iter().filter(|d| d.language == language);
                let distinct: HashSet<&str> = texts.map(|d| d.text.as_str()).collect();
                assert!(
                    distinct.len() >= 300,
                    "{} {}",
                    intent.name(),
                    language.code()
                );
            }
        }
    }

    #[test]
    fn texts_are_well_formed_and_never_name_an_intent() {
        for intent in Intent::ALL {
            let lines = match intent {
                Intent::NoConversation => 1..=4,
                _ => 2..=12,
            };
            for d in sample(intent) {
                assert!(!d.text.trim().is_empty());
                assert!(lines.contains(&d.text.split('\n').count()), "{}", d.text);
                assert!(
                    d.text.split('\n').all(|l| !l.trim().is_empty()),
                    "{}",
                    d.text
                );
                for bad in ["{", "}", "|", ">", "@", "/", "  "] {
                    assert!(!d.text.contains(bad), "{bad:?} in {}", d.text);
                }
                let text = d.text.to_lowercase();
                for i in Intent::ALL {
                    assert!(!text.contains(i.name()), "{} in {}", i.name(), d.text);
                }
            }
        }
    }

    #[test]
    fn labelled_and_unlabelled_both_occur() {
        let mut labelled = 0;
        for intent in Intent::ALL {
            for d in sample(intent) {
                let n = d.text.lines().filter(|l| is_labelled(l)).count();
                assert!(n == 0 || n == d.text.lines().count(), "{}", d.text);
                labelled += usize::from(n > 0);
            }
        }
        let share = labelled as f64 / (6 * N) as f64;
        assert!((0.6..=0.8).contains(&share), "{share}");
    }

    #[test]
    fn moods_vary_and_fit_the_intent() {
        let texts = |intent| {
            sample(intent)
                .into_iter()
                .map(|d| d.text)
                .collect::<Vec<_>>()
        };
        let refusals = texts(Intent::NotInterested);
        let any = |s: &str| refusals.iter().any(|t| t.contains(s));
        // Polite refusals, annoyed ones and refusals after hesitation.
        assert!(any("谢谢") && any("别再打") && any("……"));
        assert!(any("thanks") && any("Stop calling") && any("..."));
        // Busy customers want to be called again.
        for t in texts(Intent::Inconvenient) {
            assert!(!t.contains("别再打") && !t.contains("Don't call"), "{t}");
        }
    }
}
