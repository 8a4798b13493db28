//! The scanner's rule table: what each pattern means, which view of the text it reads, and for
//! which sources it applies. Patterns are written against folded text (lower case, homoglyphs
//! replaced by the ASCII letters they imitate) and compiled once.

use std::sync::LazyLock;

use regex::Regex;

use super::Category;

/// Which view of the text a rule reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    /// Lower case, homoglyphs folded, every run of punctuation and whitespace one space:
    /// `Ignore **all** previous\ninstructions` reads `ignore all previous instructions`.
    Words,
    /// Lower case, homoglyphs folded, punctuation and line structure kept.
    Raw,
}

/// Whether a rule applies to a source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applies {
    Any,
    /// Only untrusted tool output: the user may legitimately ask for these things themselves
    /// (the policy gate decides what actually runs).
    ToolOutputOnly,
}

pub struct Rule {
    pub category: Category,
    pub what: &'static str,
    pub view: View,
    pub applies: Applies,
    pub re: Regex,
    /// For a user message: a match that also matches this is the user speaking for themselves
    /// ("ignore my previous instructions") and is not reported.
    pub user_exempt: Option<Regex>,
}

fn rule(category: Category, what: &'static str, view: View, applies: Applies, re: &str) -> Rule {
    Rule {
        category,
        what,
        view,
        applies,
        re: Regex::new(re).unwrap_or_else(|e| panic!("scan rule {what:?}: {e}")),
        user_exempt: None,
    }
}

const STRONG_VERBS: &str = r"(?:ignore|disregard|forget|neglect|dismiss|discard|abandon|nullify|scrap|overlook|skip over|pay no attention to|do not follow|don t follow|dont follow|stop following|no longer follow|set aside|throw away|throw out|cancel)";
const WEAK_VERBS: &str = r"(?:override|overrule|bypass|circumvent|evade|get around|break|violate|disable|turn off|deactivate|remove|drop|lift)";
const PAST: &str = r"(?:previous|previously given|prior|above|earlier|preceding|foregoing|former|original|initial|system|developer|safety|all previous|all prior|all above|all the above|all earlier|all your|all of your|all of the previous|all of the above|your)";
const ORDERS: &str = r"(?:instructions?|instruction set|prompts?|directives?|guidelines|guardrails|restrictions|constraints|programming|training|rules|policies|orders|commands|context|messages?|safety filters?|content filters?|filters|safeguards|system prompt|tasks?)";

pub static RULES: LazyLock<Vec<Rule>> = LazyLock::new(|| {
    use Applies::*;
    use Category::*;
    use View::*;
    let mut v = vec![
        // ---- instruction overrides
        rule(
            InstructionOverride,
            "instruction override",
            Words,
            Any,
            &format!(r"\b{STRONG_VERBS} (?:\w+ ){{0,3}}?{PAST} (?:\w+ ){{0,2}}?{ORDERS}\b"),
        ),
        rule(
            InstructionOverride,
            "instruction override",
            Words,
            Any,
            &format!(
                r"\b{STRONG_VERBS} (?:all |any |every )?(?:of )?(?:the |your |these )?(?:instructions|prompts?|directives|guidelines|guardrails|system prompt|programming)\b"
            ),
        ),
        rule(
            InstructionOverride,
            "instruction override",
            Words,
            Any,
            &format!(
                r"\b{WEAK_VERBS} (?:all |any )?(?:of )?(?:your|the system s|the assistant s|the ai s|the model s|safety|previous|prior|above|system) (?:\w+ ){{0,2}}?(?:instructions?|prompts?|guidelines|guardrails|restrictions|rules|filters?|safeguards|programming|policies|limitations|constraints)\b"
            ),
        ),
        rule(
            InstructionOverride,
            "instruction override",
            Words,
            Any,
            r"\b(?:ignore|disregard|forget) (?:about )?(?:everything|anything|all|what) (?:\w+ ){0,2}?(?:above|before|previously|earlier|so far|you (?:were|have been|ve been) (?:told|given|instructed)|i (?:said|told you) before|in your (?:prompt|instructions))\b",
        ),
        rule(
            InstructionOverride,
            "instruction override",
            Words,
            Any,
            r"\b(?:the |all |any )?(?:above|previous|prior|earlier|original|old|system) (?:instructions|prompt|rules|directives|guidelines) (?:are|were|is|have been|has been) (?:now )?(?:void|null|cancelled|canceled|revoked|obsolete|outdated|fake|wrong|false|superseded|overridden|replaced|no longer (?:valid|apply|applicable|in effect)|invalid|irrelevant|deprecated|lifted|suspended|disabled)\b",
        ),
        rule(
            InstructionOverride,
            "new instructions",
            Raw,
            Any,
            r"\b(?:new|updated|revised|real|actual|true|secret|hidden|override|overriding|priority|admin|administrator|system|developer|operator|emergency) (?:system )?(?:instructions?|prompt|directives?|orders|task|objective|policy)(?: for (?:the |this )?(?:ai|assistant|agent|model|llm|bot|chatbot|language model)s?)?\s*(?:\*\*|__)?\s*:",
        ),
        rule(
            InstructionOverride,
            "instructions addressed to the model",
            Words,
            ToolOutputOnly,
            r"\b(?:attention|note (?:to|for)|message (?:to|for)|instructions? (?:to|for)|dear|hey|hello|hi|psst|important (?:for|to)|reminder (?:to|for)|notice (?:to|for)|directive (?:to|for)|if you are(?: an?)?|if you re(?: an?)?|to any|to all) (?:the |any |all |our |this |you |an )?(?:ai|ai assistant|ai agent|ai model|ai system|assistant|llm|llms|language model|large language model|chatbot|gpt|chatgpt|claude|copilot|gemini|autonomous agent|ai powered agent)s?\b",
        ),
        rule(
            InstructionOverride,
            "instructions addressed to the model",
            Words,
            ToolOutputOnly,
            r"\b(?:ai|assistant|llm|language model|chatbot|agent|model)s? (?:reading|processing|summari[sz]ing|parsing|browsing|analy[sz]ing) (?:this|these)\b",
        ),
        rule(
            InstructionOverride,
            "instruction override",
            Words,
            Any,
            r"\b(?:instead|rather)(?: of (?:that|summari[sz]ing|answering|doing (?:that|this)))? (?:you (?:must|should|will) )?(?:ignore|disregard|forget) (?:the|your|all|any|that|this|previous)\b",
        ),
        // ---- role hijacking
        rule(
            RoleHijack,
            "role hijack",
            Words,
            Any,
            r"\byou are now (?:an? |the |in |my |called |named )?(?:dan|stan|dude|aim|unrestricted|unfiltered|uncensored|unlimited|jailbroken|evil|liberated|developer mode|dev mode|god mode|admin mode|sudo mode|different|new|no longer|ai without|assistant without|model without|free from|freed from|released from|not bound|an? (?:ai|assistant|model|chatbot) (?:that|which|who|with|without)|(?:an? )?(?:hacker|attacker|malicious|rogue|pirate)|my (?:assistant|servant|slave|agent))\b",
        ),
        rule(
            RoleHijack,
            "role hijack",
            Words,
            Any,
            r"\byou (?:are|re) no longer (?:an? |the |bound|restricted|limited|required|constrained|subject|chatgpt|claude|assistant|ai|llm|a helpful|following|obligated)",
        ),
        rule(
            RoleHijack,
            "role hijack",
            Words,
            Any,
            r"\bfrom now on (?:you (?:are|will|must|shall|should|re) (?:act|respond|reply|answer|ignore|obey|follow only|pretend|behave|comply|only|always|never|not|roleplay|play|speak|output|be (?:an?|my|dan|evil|unrestricted|unfiltered))|act as|respond as|reply as|answer as|pretend|ignore|obey|you have no|your (?:new|only|real|true) (?:task|goal|role|purpose|instructions|name))",
        ),
        rule(
            RoleHijack,
            "role hijack",
            Words,
            Any,
            r"\b(?:act|behave|respond|roleplay|role play|answer|reply|operate|function) as (?:if you (?:are|were) |though you (?:are|were) )?(?:an? |the |my )?(?:dan|stan|dude|jailbroken|unrestricted|unfiltered|uncensored|unlimited|evil|rogue|malicious|amoral|unethical|liberated|ai without|ai with no|assistant without|assistant with no|model without|(?:different|new) (?:ai|assistant|model)|developer mode|dev mode|god mode|hacker|root user with no|admin with no|system administrator with no)\b",
        ),
        rule(
            RoleHijack,
            "role hijack",
            Words,
            Any,
            r"\bpretend (?:to be|you are|that you are|you re|you were|that you re) (?:an? |the |my )?(?:dan|unrestricted|unfiltered|uncensored|evil|different|jailbroken|ai|assistant|chatbot|language model|model|system|developer|admin|administrator|root|hacker|free|not bound|without)\b",
        ),
        rule(
            RoleHijack,
            "jailbreak persona",
            Words,
            Any,
            r"\b(?:do anything now|dan mode|dan prompt|jailbreak (?:mode|prompt|enabled|activated)|jailbroken mode|you are dan|i am dan|stay in character|no ethical guidelines|without any (?:restrictions|limitations|filters|censorship|ethical)|free of all restrictions|no restrictions apply|developer mode (?:enabled|activated|output|response|is (?:now )?(?:on|enabled|active))|(?:you are|you re) (?:now )?in (?:developer|dev|god|jailbreak|dan|unrestricted|debug|admin|sudo) mode|(?:enable|enter|activate|engage|switch to|turn on) (?:the )?(?:god|jailbreak|dan|unrestricted|unfiltered|uncensored|evil) mode)\b",
        ),
        rule(
            RoleHijack,
            "new identity or goal",
            Words,
            Any,
            r"\byour (?:new|only|real|true|actual|updated|primary) (?:task|goal|role|purpose|objective|instructions?|mission|job|name|identity|directive|system prompt) (?:is|are|now is|will be)\b",
        ),
        // ---- chat-template and role tokens
        rule(
            RoleToken,
            "chat-template token",
            Raw,
            Any,
            r"<\|\s*[a-z_]{2,30}\s*\|>|\[/?inst\]|<</?sys>>|<(?:start|end)_of_turn>|</?(?:system_prompt|system-prompt|sys_prompt|admin_instructions|ai_instructions|assistant_instructions|important_instructions|secret_instructions|hidden_instructions|instructions_for_ai|system_instructions|system_message)>|\[/?(?:system_prompt|system message|sys)\]",
        ),
        rule(
            RoleToken,
            "forged conversation turn",
            Raw,
            Any,
            r"(?m)^[ \t>*_]*(?:\*\*)?assistant(?:\*\*)?\s*:[ \t]*\S|\n[ \t]*\n[ \t>*_]*(?:\*\*)?human(?:\*\*)?\s*:[ \t]*\S|(?s)\bhuman\s*:\s.{0,2000}?\bassistant\s*:\s|###\s*(?:system|instruction|instructions|human|assistant|system prompt)\s*:",
        ),
        rule(
            RoleToken,
            "forged role header",
            Raw,
            Any,
            r"(?m)^[ \t>]*(?:#{2,}|\*\*)\s*(?:system|instruction|instructions|response|human|assistant|user|system prompt|system message)\s*(?:\*\*)?\s*:",
        ),
        rule(
            RoleToken,
            "forged role header",
            Raw,
            Any,
            r"(?m)^[ \t>]*(?:system|system prompt|system message|system override|admin|administrator)\s*:\s*(?:you |ignore|disregard|forget|new |from now|the assistant|the ai|override|attention|important|reveal|print|send|do not|never)",
        ),
        // ---- prompt and secret exfiltration
        rule(
            Exfiltration,
            "system prompt extraction",
            Words,
            Any,
            r"\b(?:reveal|print|show|output|display|repeat|leak|dump|tell|give|write|disclose|share|recite|spell out|type out|copy|paste|paraphrase|summari[sz]e|translate|send|post|provide|list|return|echo|expose|what (?:is|are|was|were)|read back|quote) (?:\w+ ){0,4}?(?:system prompt|system message|system instructions|initial prompt|initial instructions|hidden prompt|hidden instructions|original prompt|original instructions|secret instructions|pre prompt|preprompt|developer message|developer instructions|(?:your|the ai s|the assistant s) (?:instructions|prompt|rules|guidelines|directives|configuration|context window|initial|system)|(?:the )?(?:instructions|prompt|text|words|everything) (?:above|before this|you were given|verbatim)|words above|text above|everything above)\b",
        ),
        rule(
            Exfiltration,
            "request for secrets",
            Words,
            Any,
            r"\b(?:reveal|print|show|output|display|dump|leak|disclose|expose|tell|give|list|cat|echo|read out|return|share|provide|send|post|upload|forward|email) (?:me |us )?(?:all |every |any )?(?:of )?(?:your|the assistant s|the ai s|the agent s|the model s) (?:\w+ ){0,2}?(?:api keys?|secrets?|credentials|passwords?|tokens?|env|environment|env(?:ironment)? var(?:iable)?s|private keys?|ssh keys?|keys|cookies|session)\b",
        ),
        rule(
            Exfiltration,
            "request for secrets",
            Words,
            ToolOutputOnly,
            r"\b(?:print|output|dump|reveal|list|show|echo|display|return|include|paste|put|write|add|tell|give) (?:out )?(?:me |us )?(?:all |every |any )?(?:of )?(?:the )?(?:current |available |stored |saved |local )?(?:environment variables|env vars|env variables|environment|secrets|api keys?|access keys?|credentials|private keys?|ssh keys?|passwords|tokens|aws keys|\.env|env file|dotenv)\b(?: \w+){0,4}? (?:in|into|to|as part of|at the end of|at the start of) (?:your|the|this) (?:response|reply|answer|output|message|summary|next message|chat|conversation|final answer|result)",
        ),
        rule(
            Exfiltration,
            "request for secrets",
            Words,
            ToolOutputOnly,
            r"\b(?:read|open|cat|print|get|fetch|retrieve|collect|gather|grab|extract|find|locate|look up|look for|search for|access) (?:and (?:print|send|show|output) )?(?:all |every |any )?(?:of )?(?:the |your |their |any |all )?(?:user s |users |stored |local |saved |available |current |system |server s |host s )?(?:api keys?|secrets?|credentials|passwords|private keys?|ssh keys?|aws (?:access |secret )?keys?|tokens|env(?:ironment)? var(?:iable)?s|\.env files?|env files?|id rsa|kubeconfig|cookies) (?:\w+ ){0,6}?(?:and|then) (?:\w+ ){0,3}?(?:send|post|upload|forward|email|include|append|paste|put|exfiltrate|transmit|submit|report|encode|add|embed|output|print|show|reveal|share|leak|reply)\b",
        ),
        rule(
            Exfiltration,
            "sending data to a remote address",
            Words,
            Any,
            r"\b(?:send|post|upload|forward|email|e mail|mail|exfiltrate|transmit|leak|submit|beacon|sync|push|append|attach|include|embed|encode|paste|insert|put|add|report|deliver|pipe|relay) (?:\w+ ){0,6}?(?:api keys?|secrets?|credentials?|passwords?|tokens?|env(?:ironment)? (?:var(?:iable)?s?|file)|environment|dotenv|env file|ssh keys?|private keys?|id rsa|aws (?:access|secret)\w*|kubeconfig|cookies|session cookies?|conversation|chat history|chat log|conversation history|system prompt|user data|personal data|contents of|the data|the output|the result|the answer|the summary|everything|all (?:files|data|information))(?: \w+){0,8}? (?:to|into|in|at|via|as|using|through|inside) (?:\w+ ){0,4}?(?:https?|url|urls|webhook|webhooks|endpoint|attacker|attackers|external server|remote server|our server|my server|this server|pastebin|discord|telegram bot|ngrok|requestbin|pipedream|burp|collaborator|oastify|interactsh|image url|image link|query (?:string|param|parameter)|url parameter|link below|following (?:url|link|address|endpoint)|email address|this address|this link|this url|markdown image)\b",
        ),
        rule(
            Exfiltration,
            "data smuggled into a URL",
            Words,
            Any,
            r"\b(?:replace|substitute|fill in|append|add|include|insert|encode|put|concatenate|embed|url encode|base64 encode) (?:\w+ ){0,8}?(?:in|into|to|with|at the end of|as) (?:\w+ ){0,3}?(?:the )?(?:url|link|image url|image link|image|query|query string|parameter|param|markdown image|img src|src attribute)\b(?: \w+){0,12}? (?:secret|secrets|password|passwords|api key|token|credential|credentials|conversation|chat|history|data|summary|answer|response|prompt|env|environment|email|memory|context|information|key|keys)\b",
        ),
        rule(
            Exfiltration,
            "data smuggled into a URL",
            Words,
            Any,
            r"\b(?:replace|substitute|fill in) (?:\w+ ){0,2}?(?:data|secret|secrets|info|information|x+|placeholder|value|payload) (?:\w+ ){0,10}?(?:with|by) (?:\w+ ){0,6}?(?:secret|secrets|password|passwords|api key|token|credential|credentials|conversation|chat|history|summary|prompt|env|environment|email|memory|context|user s|private)",
        ),
        // ---- commands that fetch-and-run or ship secrets out (tool output only)
        rule(
            Exfiltration,
            "download piped to a shell",
            Raw,
            ToolOutputOnly,
            r"\b(?:curl|wget|fetch|iwr|irm|invoke-webrequest|invoke-restmethod)\b[^|\n;]*\|\s*(?:sudo\s+(?:-\S+\s+)*)?(?:env\s+\S+\s+)?(?:ba|z|da|k|fi|c|tc|a)?sh\b|\b(?:curl|wget|iwr|irm|invoke-webrequest|invoke-restmethod)\b[^|\n;]*\|\s*(?:sudo\s+)?(?:python[23]?|perl|ruby|node|php|iex|invoke-expression)\b|\b(?:ba|z)?sh\s+(?:-c\s+)?[\x22']?(?:<\(|\$\(|`)\s*(?:curl|wget)\b|\biex\s*\(?\s*(?:\(?\s*new-object\s+net\.webclient|iwr|irm|invoke-webrequest|invoke-restmethod)",
        ),
        rule(
            Exfiltration,
            "secrets piped to the network",
            Raw,
            ToolOutputOnly,
            r"\b(?:env|printenv|set|export -p|history|declare -x)\s*(?:\|\s*(?:base64|gzip|xxd|openssl\s+\S+)[^|\n]*)?\|\s*(?:curl|wget|nc|ncat|netcat|socat|telnet|ssh)\b|\b(?:cat|base64|tar|zip|gzip|xxd|openssl)\s+[^|\n;]*(?:\.env\b|\.ssh/|id_rsa|id_ed25519|id_ecdsa|\.aws/credentials|\.kube/config|\.netrc|\.git-credentials|/etc/shadow|\.docker/config\.json|\.npmrc|\.pypirc|/proc/self/environ)[^|\n;]*\|\s*(?:curl|wget|nc|ncat|netcat|socat|telnet)\b|\b(?:curl|wget)\b[^\n]*?(?:\s-d|\s-f|\s-t|--data(?:-binary|-raw|-urlencode|-ascii)?|--form|--upload-file|--post-data|--post-file|--body-file)[\s=]*[\x22']?[a-z_]*=?@?(?:[^\s\x22']*(?:\.env\b|id_rsa|id_ed25519|\.aws/credentials|\.kube/config|\.netrc|\.git-credentials|/etc/shadow|/etc/passwd|\.docker/config\.json|\.ssh/|/proc/self/environ)|\$\((?:env|printenv|cat|set)|`(?:env|printenv|cat|set))|https?://[^\s\x22')]*(?:\$\((?:env|printenv|cat|whoami|hostname|id|base64|echo|set)\b|`(?:env|printenv|cat|whoami|hostname|base64)\b)|\b(?:nc|ncat|netcat|socat)\b[^\n|]*<\s*(?:~|/root|/home/\S+|\$home)?/?\S*(?:\.env\b|\.ssh/|id_rsa|credentials|/etc/shadow|/etc/passwd)",
        ),
        rule(
            Exfiltration,
            "secret file read",
            Raw,
            ToolOutputOnly,
            r"\b(?:cat|less|more|head|tail|type|print|read|open|base64|xxd)\s+(?:~|\$home|/root|/home/[a-z0-9_.-]+)/\.(?:ssh/id_(?:rsa|ed25519|ecdsa|dsa)\b(?:[^.]|$)|aws/credentials|netrc|git-credentials|docker/config\.json|kube/config)|\bcat\s+/proc/(?:self|1)/environ\b",
        ),
        // ---- encoded payloads and odd URLs
        rule(
            EncodedPayload,
            "data: URL carrying active content",
            Raw,
            Any,
            r"\bdata:(?:text/(?:html|plain|javascript|x-python|x-shellscript)|application/(?:javascript|x-javascript|ecmascript|x-sh|x-httpd-php|xhtml\+xml)|image/svg\+xml)\s*[;,]",
        ),
        rule(
            EncodedPayload,
            "instruction to decode and follow",
            Words,
            Any,
            r"\b(?:decode|base64 decode|unbase64|decrypt|deobfuscate|rot13|reverse) (?:\w+ ){0,6}?(?:and|then) (?:\w+ ){0,2}?(?:follow|execute|run|obey|do|perform|carry out|apply|act on|comply with)\b(?: \w+){0,3}? (?:it|them|the (?:result|instructions|text|message|command|content|decoded)|what it says|its instructions|the instructions within)\b",
        ),
        rule(
            EncodedPayload,
            "encoded command piped to a shell",
            Raw,
            ToolOutputOnly,
            r"\b(?:base64\s+(?:-d|--decode|-di|-id)|xxd\s+-r(?:\s+-p)?|openssl\s+(?:base64|enc)\s+-d)[^|\n]*\|\s*(?:sudo\s+)?(?:ba|z|da|k)?sh\b|\b(?:eval|exec)\s*\(?\s*(?:atob|base64_decode|b64decode|base64\.b64decode|frombase64string)\s*\(",
        ),
    ];
    // "ignore my previous instructions" is a user correcting themselves, not an injection.
    let exempt = Regex::new(r"\bmy\b").expect("static regex");
    for r in v.iter_mut().take(2) {
        r.user_exempt = Some(exempt.clone());
    }
    v
});

/// High-confidence phrases matched on letters only, after undoing digit/symbol substitutions:
/// catches `i.g.n.o.r.e a-l-l p r e v i o u s` and `1gn0r3 4ll pr3v10us 1nstruct10ns`.
pub static COMPACT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?:ignore|disregard|forget)(?:all|any|the|your|of)*(?:previous|prior|above|earlier|preceding|your|system)(?:instructions?|prompts?|rules|directives|guidelines)|(?:reveal|print|show|output|repeat|leak|dump)(?:me)?(?:your|the)(?:full|entire|whole|hidden|secret|original|initial)?(?:systemprompt|instructions)|youarenow(?:dan|unrestricted|unfiltered|jailbroken|indevelopermode)|developermodeenabled|doanythingnow",
    )
    .expect("static regex")
});

/// A URL in a markdown image or link, or an HTML `src`/`href`.
pub static URLS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r#"(?x)
        (!?)\[[^\]\n]{0,300}\]\(\s*<?(https?://[^)\s>]+)
      | <\s*(img|a|iframe|script|link|source|video|audio|object|embed)\b[^>]{0,300}?\b(?:src|href|data|srcset|poster)\s*=\s*["']?(https?://[^"'\s>]+)
      | ^\s*\[[^\]\n]{1,100}\]:\s*(https?://\S+)
    "#,
    )
    .expect("static regex")
});

/// Base64 (standard or URL-safe) runs long enough to hide a sentence.
pub static BASE64: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"[A-Za-z0-9+/]{20,}={0,2}|[A-Za-z0-9_-]{20,}={0,2}").expect("static regex")
});

/// Hex runs and `\x` escape runs.
pub static HEX: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?:\\[xX][0-9a-fA-F]{2}){8,}|\b(?:[0-9a-fA-F]{2}){12,}\b").expect("static regex")
});
