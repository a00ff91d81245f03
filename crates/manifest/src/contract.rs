//! Stage two, second half: the `skillcell.*` metadata keys to a validated [`Contract`].
//! The grammar is documented with examples in docs/contract.md.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use skillcell_types::{
    Access, Contract, EnvName, Executable, FsGrant, GrantPath, HostPattern, LimitKind, LimitUnit,
    NetRule, Profile, Runtime, SkillName,
};

use crate::diag::Finding;
use crate::spec::MetaEntry;

/// The prefix of every contract key inside `metadata`.
pub const PREFIX: &str = "skillcell.";

/// Every contract key, with a one-line summary (shown by `lint` for unknown keys).
pub const KEYS: [(&str, &str); 9] = [
    (
        "skillcell.entry",
        "the script or module to run, relative to the skill folder",
    ),
    (
        "skillcell.runtime",
        "python3, bash, sh, node or wasm; overrides shebang and extension",
    ),
    (
        "skillcell.fs.read",
        "paths the skill may read: absolute, or $PLACEHOLDER[/sub]",
    ),
    (
        "skillcell.fs.write",
        "paths the skill may read and write: absolute, or $PLACEHOLDER[/sub]",
    ),
    (
        "skillcell.network",
        "hosts the skill may reach: host[:port], *.domain[:port], IP literals",
    ),
    (
        "skillcell.env",
        "caller environment variables passed into the cell",
    ),
    (
        "skillcell.exec",
        "programs the skill may start: /abs/path or a bare name",
    ),
    (
        "skillcell.limits",
        "key=value resource limits: memory cpu wall pids fsize output nofile tmp",
    ),
    ("skillcell.calls", "other skills this skill may call"),
];

/// Environment variables set by the cell itself.
pub const RESERVED_ENV: [&str; 4] = ["PATH", "HOME", "LANG", "TMPDIR"];

/// Environment names refused because they change how a loader, interpreter, shell, resolver or
/// TLS/proxy stack behaves: (pattern, reason). A pattern ending in `*` is a prefix.
pub const DANGEROUS_ENV: &[(&str, &str)] = &[
    (
        "LD_*",
        "changes what the dynamic loader loads (LD_PRELOAD, LD_LIBRARY_PATH, LD_AUDIT)",
    ),
    ("DYLD_*", "changes what the dynamic loader loads"),
    (
        "GLIBC_TUNABLES",
        "changes glibc's behaviour and has been an exploit vector",
    ),
    (
        "GCONV_PATH",
        "makes glibc load code for character conversion",
    ),
    ("LOCPATH", "makes glibc load locale data from another place"),
    (
        "NLSPATH",
        "makes the C library load message catalogues from another place",
    ),
    ("MALLOC_*", "changes the allocator's behaviour"),
    ("HOSTALIASES", "changes name resolution"),
    ("RES_OPTIONS", "changes name resolution"),
    ("LOCALDOMAIN", "changes name resolution"),
    ("PYTHONPATH", "adds directories to Python's import path"),
    ("PYTHONHOME", "moves Python's standard library"),
    ("PYTHONSTARTUP", "runs a file when Python starts"),
    (
        "PYTHONUSERBASE",
        "adds a user site directory to Python's import path",
    ),
    ("PYTHONINSPECT", "drops Python into interactive mode"),
    (
        "PYTHONBREAKPOINT",
        "makes breakpoint() import and call any callable",
    ),
    (
        "PYTHONWARNINGS",
        "can make Python import modules while parsing warning filters",
    ),
    (
        "PYTHONEXECUTABLE",
        "changes what Python reports as its executable",
    ),
    (
        "PYTHONPLATLIBDIR",
        "moves Python's platform library directory",
    ),
    ("PYTHONSAFEPATH", "changes Python's import path"),
    ("PYTHONNOUSERSITE", "changes Python's import path"),
    ("PYTHONDEBUG", "changes interpreter behaviour"),
    (
        "NODE_*",
        "changes how Node.js loads code (NODE_OPTIONS, NODE_PATH)",
    ),
    ("NPM_CONFIG_*", "changes npm's registry, scripts and paths"),
    ("BASH_ENV", "makes bash run a file at start"),
    ("ENV", "makes sh run a file at start"),
    ("BASH_FUNC_*", "defines shell functions"),
    ("SHELLOPTS", "changes shell behaviour"),
    ("BASHOPTS", "changes shell behaviour"),
    (
        "PS4",
        "is expanded, with command substitution, by shells tracing commands",
    ),
    ("PROMPT_COMMAND", "runs a command in interactive shells"),
    ("IFS", "changes how shells split words"),
    ("CDPATH", "changes where shell cd goes"),
    ("PERL5LIB", "adds directories to Perl's module path"),
    ("PERL5OPT", "adds options to every Perl run"),
    ("PERLLIB", "adds directories to Perl's module path"),
    ("RUBYLIB", "adds directories to Ruby's load path"),
    ("RUBYOPT", "adds options to every Ruby run"),
    (
        "JAVA_TOOL_OPTIONS",
        "adds options, agents included, to every JVM",
    ),
    ("_JAVA_OPTIONS", "adds options to every JVM"),
    ("JDK_JAVA_OPTIONS", "adds options to every JVM"),
    (
        "*_PROXY",
        "redirects network traffic around the egress proxy",
    ),
    (
        "*_proxy",
        "redirects network traffic around the egress proxy",
    ),
    (
        "SSL_CERT_FILE",
        "changes which TLS certificates are trusted",
    ),
    ("SSL_CERT_DIR", "changes which TLS certificates are trusted"),
    (
        "REQUESTS_CA_BUNDLE",
        "changes which TLS certificates are trusted",
    ),
    (
        "CURL_CA_BUNDLE",
        "changes which TLS certificates are trusted",
    ),
    ("GIT_SSH", "makes git run another program"),
    ("GIT_SSH_COMMAND", "makes git run another command"),
    ("GIT_EXEC_PATH", "makes git run programs from another place"),
    (
        "GIT_CONFIG*",
        "changes git configuration, which can run commands",
    ),
    ("GIT_PROXY_COMMAND", "makes git run another command"),
    ("GIT_ASKPASS", "makes git run another program"),
    ("SSH_ASKPASS", "makes ssh run another program"),
    ("EDITOR", "names a program other programs run"),
    ("VISUAL", "names a program other programs run"),
    ("PAGER", "names a program other programs run"),
];

/// The reason an environment name is refused, if it is. Matching ignores case: programs
/// disagree on case (urllib honours `HTTPS_Proxy`), so every spelling is refused.
pub fn dangerous_env(name: &str) -> Option<&'static str> {
    let name = name.to_ascii_uppercase();
    DANGEROUS_ENV.iter().find_map(|(pattern, why)| {
        let pattern = pattern.to_ascii_uppercase();
        let hit = if let Some(prefix) = pattern.strip_suffix('*') {
            name.starts_with(prefix)
        } else if let Some(suffix) = pattern.strip_prefix('*') {
            name.ends_with(suffix)
        } else {
            name == pattern
        };
        hit.then_some(*why)
    })
}

/// Builds the contract from the metadata entries. Non-contract keys are ignored.
pub(crate) fn read_contract(entries: &[MetaEntry], out: &mut Vec<Finding>) -> Contract {
    let mut contract = Contract::default_blind();
    let mut fs: BTreeSet<FsGrant> = BTreeSet::new();
    for entry in entries {
        let key = entry.key.name.as_str();
        let Some(sub) = key.strip_prefix(PREFIX) else {
            if key.to_ascii_lowercase().starts_with("skillcell") {
                out.push(
                    Finding::warning(
                        "contract_key_case",
                        entry.key.line,
                        entry.key.col,
                        format!(
                            "`{key}` looks like a contract key but is not one; it grants nothing"
                        ),
                    )
                    .key(format!("metadata.{key}"))
                    .help("contract keys are lowercase and start with `skillcell.`"),
                );
            }
            continue;
        };
        contract.profile = Profile::Declared;
        let mut ctx = Ctx {
            entry,
            out: &mut *out,
            token: None,
        };
        let value = entry.value.value.trim();
        if value.is_empty() {
            ctx.error(
                "contract_empty_value",
                "the value is empty",
                "remove the key to deny everything it would grant",
            );
            continue;
        }
        let tokens: Vec<&str> = value.split_ascii_whitespace().collect();
        match sub {
            "entry" => contract.entry = ctx.single(&tokens).and_then(|t| ctx.entry(t)),
            "runtime" => contract.runtime = ctx.single(&tokens).and_then(|t| ctx.runtime(t)),
            "fs.read" | "fs.write" => {
                let access = if sub == "fs.read" {
                    Access::Read
                } else {
                    Access::Write
                };
                for t in ctx.unique(&tokens) {
                    if let Some(path) = ctx.grant_path(t) {
                        fs.insert(FsGrant { path, access });
                    }
                }
            }
            "network" => {
                let mut rules: Vec<NetRule> = ctx
                    .unique(&tokens)
                    .filter_map(|t| ctx.net_rule(t))
                    .collect();
                rules.sort();
                rules.dedup();
                contract.network = rules;
            }
            "env" => {
                let mut names: Vec<EnvName> =
                    ctx.unique(&tokens).filter_map(|t| ctx.env(t)).collect();
                names.sort();
                contract.env = names;
            }
            "exec" => {
                let mut exes: Vec<Executable> =
                    ctx.unique(&tokens).filter_map(|t| ctx.exec(t)).collect();
                exes.sort();
                contract.exec = exes;
            }
            "limits" => ctx.limits(&tokens, &mut contract.limits),
            "calls" => {
                let mut calls: Vec<SkillName> =
                    ctx.unique(&tokens).filter_map(|t| ctx.call(t)).collect();
                calls.sort();
                contract.calls = calls;
            }
            _ => {
                let help = match suggest(key) {
                    Some(k) => format!("did you mean `{k}`? known keys: {}", key_list()),
                    None => format!("known keys: {}", key_list()),
                };
                out.push(
                    Finding::error(
                        "contract_unknown_key",
                        entry.key.line,
                        entry.key.col,
                        format!("`{key}` is not a skillcell contract key"),
                    )
                    .key(format!("metadata.{key}"))
                    .help(help),
                );
            }
        }
    }
    // A write grant implies read: drop read grants shadowed by a write grant on the same path.
    let written: BTreeSet<GrantPath> = fs
        .iter()
        .filter(|g| g.access == Access::Write)
        .map(|g| g.path.clone())
        .collect();
    contract.fs = fs
        .into_iter()
        .filter(|g| g.access == Access::Write || !written.contains(&g.path))
        .collect();
    contract
}

fn key_list() -> String {
    KEYS.iter().map(|(k, _)| *k).collect::<Vec<_>>().join(", ")
}

/// The known key closest to `key`, if it is close enough to be a typo.
fn suggest(key: &str) -> Option<&'static str> {
    KEYS.iter()
        .map(|(k, _)| (edit_distance(key, k), *k))
        .filter(|(d, _)| *d <= 3)
        .min()
        .map(|(_, k)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != *cb))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

struct Ctx<'a> {
    entry: &'a MetaEntry,
    out: &'a mut Vec<Finding>,
    /// Byte offset in the value of the token being checked, so findings point at the token.
    token: Option<usize>,
}

impl Ctx<'_> {
    fn push(&mut self, f: Finding) {
        let f = f.key(format!("metadata.{}", self.entry.key.name));
        self.out.push(f);
    }

    /// Where the current token starts: exact for plain one-line values, else the value's start.
    fn pos(&self) -> (usize, usize) {
        let v = &self.entry.value;
        let offset = match self.token {
            Some(byte) if v.plain && !v.value.contains('\n') => v
                .value
                .get(..byte)
                .map_or(0, |before| before.chars().count()),
            _ => 0,
        };
        (v.line, v.col + offset)
    }

    /// Notes which token is being checked. Tokens are slices of the value, so their offset is
    /// the distance between the two starts.
    fn at(&mut self, token: &str) {
        let start = self.entry.value.value.as_ptr() as usize;
        let here = token.as_ptr() as usize;
        self.token = here
            .checked_sub(start)
            .filter(|off| *off <= self.entry.value.value.len());
    }

    fn error(&mut self, code: &'static str, message: &str, help: &str) {
        let (line, col) = self.pos();
        self.push(Finding::error(code, line, col, message).help(help));
    }

    fn warning(&mut self, code: &'static str, message: &str, help: &str) {
        let (line, col) = self.pos();
        self.push(Finding::warning(code, line, col, message).help(help));
    }

    fn single<'t>(&mut self, tokens: &[&'t str]) -> Option<&'t str> {
        match tokens {
            [one] => Some(one),
            _ => {
                self.error(
                    "contract_not_single",
                    &format!("expected one value, found {}", tokens.len()),
                    "give exactly one value, without spaces",
                );
                None
            }
        }
    }

    /// Tokens in order with repeats reported once and skipped.
    fn unique<'t>(&mut self, tokens: &[&'t str]) -> impl Iterator<Item = &'t str> + use<'t> {
        let mut seen = BTreeSet::new();
        let mut keep = Vec::new();
        for t in tokens {
            if seen.insert(*t) {
                keep.push(*t);
            } else {
                self.at(t);
                self.warning(
                    "contract_repeated_value",
                    &format!("`{t}` is listed twice"),
                    "list each value once",
                );
            }
        }
        keep.into_iter()
    }

    fn entry(&mut self, t: &str) -> Option<String> {
        self.at(t);
        match relative_path(t) {
            Ok(p) => Some(p),
            Err(why) => {
                self.error(
                    "contract_bad_entry",
                    &format!("entry `{t}` {why}"),
                    "name a file inside the skill folder, e.g. `scripts/main.py`",
                );
                None
            }
        }
    }

    fn runtime(&mut self, t: &str) -> Option<Runtime> {
        self.at(t);
        let r = Runtime::from_keyword(t);
        if r.is_none() {
            let known: Vec<&str> = Runtime::ALL.iter().map(|r| r.as_str()).collect();
            self.error(
                "contract_bad_runtime",
                &format!("unknown runtime `{t}`"),
                &format!("use one of: {}", known.join(", ")),
            );
        }
        r
    }

    fn grant_path(&mut self, t: &str) -> Option<GrantPath> {
        self.at(t);
        let parsed = parse_grant_path(t);
        match parsed {
            Ok(path) => {
                if let Some(why) = broad_grant(&path) {
                    self.warning(
                        "contract_broad_grant",
                        &format!("`{t}` {why}"),
                        "grant the narrowest directory the skill needs; broad grants will need an explicit risk acceptance at approval",
                    );
                }
                Some(path)
            }
            Err((why, help)) => {
                self.error("contract_bad_path", &format!("path `{t}` {why}"), help);
                None
            }
        }
    }

    fn net_rule(&mut self, t: &str) -> Option<NetRule> {
        self.at(t);
        match parse_net_rule(t) {
            Ok(rule) => Some(rule),
            Err((why, help)) => {
                self.error("contract_bad_host", &format!("`{t}` {why}"), &help);
                None
            }
        }
    }

    fn env(&mut self, t: &str) -> Option<EnvName> {
        self.at(t);
        let valid = t.len() <= 128
            && t.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && t.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            self.error(
                "contract_bad_env",
                &format!("`{t}` is not an environment variable name"),
                "use letters, digits and underscores, not starting with a digit",
            );
            return None;
        }
        if RESERVED_ENV.iter().any(|r| r.eq_ignore_ascii_case(t)) {
            self.error(
                "contract_env_reserved",
                &format!("`{t}` is set by the cell itself"),
                "remove it; the cell sets PATH, HOME, LANG and TMPDIR",
            );
            return None;
        }
        if let Some(why) = dangerous_env(t) {
            self.error(
                "contract_env_dangerous",
                &format!("`{t}` {why}"),
                "remove it; pass the setting as an argument or a file instead",
            );
            return None;
        }
        Some(EnvName(t.to_owned()))
    }

    fn exec(&mut self, t: &str) -> Option<Executable> {
        self.at(t);
        if t.starts_with('/') {
            return match parse_absolute(t) {
                Ok(p) if p != "/" => Some(Executable::Path(p)),
                Ok(_) | Err(_) => {
                    self.error(
                        "contract_bad_exec",
                        &format!("`{t}` is not a normalized absolute path to a program"),
                        "write the program's path without `.`, `..`, `//` or a trailing slash, e.g. `/usr/bin/git`",
                    );
                    None
                }
            };
        }
        let bare = t.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
            && t.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '+' | '-'));
        if !bare {
            self.error(
                "contract_bad_exec",
                &format!("`{t}` is neither an absolute path nor a bare program name"),
                "write a program name such as `git`, or its absolute path such as `/usr/bin/git`; shell syntax is not allowed",
            );
            return None;
        }
        Some(Executable::Name(t.to_owned()))
    }

    fn call(&mut self, t: &str) -> Option<SkillName> {
        self.at(t);
        match SkillName::new(t) {
            Ok(n) => Some(n),
            Err(e) => {
                self.error(
                    "contract_bad_call",
                    &format!("`{t}`: {e}"),
                    "list the names of installed skills",
                );
                None
            }
        }
    }

    fn limits(&mut self, tokens: &[&str], limits: &mut skillcell_types::Limits) {
        let mut seen = BTreeSet::new();
        for t in tokens {
            self.at(t);
            let Some((k, v)) = t.split_once('=') else {
                self.error(
                    "contract_bad_limit",
                    &format!("`{t}` is not `key=value`"),
                    "write limits like `memory=128M cpu=5s`",
                );
                continue;
            };
            let Some(kind) = LimitKind::from_key(k) else {
                let known: Vec<&str> = LimitKind::ALL.iter().map(|k| k.key()).collect();
                self.error(
                    "contract_unknown_limit",
                    &format!("unknown limit `{k}`"),
                    &format!("known limits: {}", known.join(", ")),
                );
                continue;
            };
            if !seen.insert(kind) {
                self.error(
                    "contract_repeated_limit",
                    &format!("limit `{k}` is given twice"),
                    "give each limit once",
                );
                continue;
            }
            match parse_limit(kind, v) {
                Ok(value) => limits.set(kind, value),
                Err(why) => {
                    let (lo, hi) = kind.bounds();
                    self.error(
                        "contract_bad_limit",
                        &format!("`{t}`: {why}"),
                        &format!(
                            "{} ({}); allowed range {}..={}",
                            k,
                            kind.meaning(),
                            kind.render(lo),
                            kind.render(hi)
                        ),
                    );
                }
            }
        }
    }
}

/// Characters refused in any path: shell syntax and globs, which grants do not interpret.
fn bad_path_char(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '*' | '?'
                | '['
                | ']'
                | '{'
                | '}'
                | '$'
                | '`'
                | '\\'
                | ';'
                | '|'
                | '&'
                | '<'
                | '>'
                | '"'
                | '\''
                | '~'
        )
}

/// Normalized path components: none empty, `.` or `..`, none with refused characters.
fn components(rest: &str) -> Result<(), &'static str> {
    for part in rest.split('/') {
        match part {
            "" => return Err("has an empty component (`//` or a trailing `/`)"),
            "." | ".." => return Err("is not normalized (`.` or `..` component)"),
            p if p.chars().any(bad_path_char) => {
                return Err("contains shell or glob syntax, which is not interpreted");
            }
            _ => {}
        }
    }
    Ok(())
}

fn relative_path(t: &str) -> Result<String, &'static str> {
    if t.starts_with('/') {
        return Err("is absolute; it must be relative to the skill folder");
    }
    if t.starts_with('~') {
        return Err("starts with `~`; it must be relative to the skill folder");
    }
    components(t)?;
    Ok(t.to_owned())
}

fn parse_absolute(t: &str) -> Result<String, &'static str> {
    if t == "/" {
        return Ok(t.to_owned());
    }
    let rest = t.strip_prefix('/').ok_or("is not absolute")?;
    components(rest)?;
    Ok(t.to_owned())
}

/// Parses one filesystem grant: `/abs/path`, `$NAME` or `$NAME/rel/path`.
pub fn parse_grant_path(t: &str) -> Result<GrantPath, (&'static str, &'static str)> {
    const HELP: &str = "write an absolute normalized path such as `/srv/data`, or a caller-supplied placeholder such as `$WORKSPACE` or `$WORKSPACE/out`";
    if t.starts_with('~') {
        return Err((
            "uses `~`, which depends on who runs the skill",
            "use a placeholder the caller supplies, such as `$WORKSPACE`",
        ));
    }
    if let Some(rest) = t.strip_prefix('$') {
        let (name, sub) = rest.split_once('/').unwrap_or((rest, ""));
        let valid_name = name.starts_with(|c: char| c.is_ascii_uppercase())
            && name
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
        if !valid_name {
            return Err((
                "has an invalid placeholder name",
                "placeholders are upper case, e.g. `$WORKSPACE` or `$INPUT_DIR`",
            ));
        }
        if rest.contains('/') {
            components(sub).map_err(|why| (why, HELP))?;
        }
        return Ok(GrantPath::Placeholder {
            name: name.to_owned(),
            rest: sub.to_owned(),
        });
    }
    if !t.starts_with('/') {
        return Err(("is relative, so it is unclear what it is relative to", HELP));
    }
    parse_absolute(t)
        .map(GrantPath::Absolute)
        .map_err(|why| (why, HELP))
}

/// Why a grant is broad enough to need an explicit risk acceptance, if it is.
fn broad_grant(path: &GrantPath) -> Option<&'static str> {
    const SYSTEM: [&str; 12] = [
        "/", "/etc", "/home", "/root", "/proc", "/sys", "/dev", "/boot", "/var", "/run", "/usr",
        "/tmp",
    ];
    const SECRETS: [&str; 9] = [
        ".ssh", ".aws", ".gnupg", ".kube", ".docker", ".netrc", ".config", ".git", ".azure",
    ];
    let rest = match path {
        GrantPath::Absolute(p) if SYSTEM.contains(&p.as_str()) => {
            return Some("grants a whole system directory");
        }
        GrantPath::Placeholder { name, rest } if rest.is_empty() && name == "HOME" => {
            return Some("asks the caller for a whole home directory");
        }
        GrantPath::Absolute(p) => p.as_str(),
        GrantPath::Placeholder { rest, .. } => rest.as_str(),
    };
    if rest.split('/').any(|c| SECRETS.contains(&c)) {
        return Some("reaches into a place where credentials or hooks live");
    }
    None
}

/// Parses `host[:port]`, `*.suffix[:port]`, `1.2.3.4[:port]` or `[v6][:port]`. No port means 443.
pub fn parse_net_rule(t: &str) -> Result<NetRule, (String, String)> {
    let err = |why: &str, help: &str| Err((why.to_owned(), help.to_owned()));
    let (host, port) = if let Some(rest) = t.strip_prefix('[') {
        let Some((v6, after)) = rest.split_once(']') else {
            return err(
                "has an unclosed `[`",
                "write IPv6 addresses as `[2001:db8::1]:443`",
            );
        };
        let port = match after {
            "" => None,
            p => match p.strip_prefix(':') {
                Some(p) => Some(p),
                None => return err("has text after `]`", "write `[addr]:port`"),
            },
        };
        let Ok(ip) = v6.parse::<Ipv6Addr>() else {
            return err(
                "is not a valid IPv6 address",
                "write IPv6 addresses as `[2001:db8::1]:443`",
            );
        };
        if let Some(v4) = skillcell_types::net::embedded_ipv4(&ip) {
            return Err((
                format!("hides the IPv4 address {v4} inside IPv6"),
                format!("write it as `{v4}`"),
            ));
        }
        if let Some(why) = not_a_host(IpAddr::V6(ip)) {
            return Err((
                format!("is {why}"),
                "name the host's own address or name".to_owned(),
            ));
        }
        (HostPattern::Ip(IpAddr::V6(ip)), port)
    } else {
        let (h, p) = match t.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (t, None),
        };
        (parse_host(h)?, p)
    };
    let port = match port {
        None => 443,
        Some(p) if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) => {
            return Err((
                format!("has an invalid port `{p}`"),
                "write the port as decimal digits, from 1 to 65535".to_owned(),
            ));
        }
        Some(p) => match p.parse::<u16>() {
            Ok(0) | Err(_) => {
                return Err((
                    format!("has an invalid port `{p}`"),
                    "use a port from 1 to 65535; each port must be listed, there is no wildcard"
                        .to_owned(),
                ));
            }
            Ok(n) if p.starts_with('0') => {
                return Err((
                    format!("writes the port with a leading zero (`{p}`)"),
                    format!("write `{n}`"),
                ));
            }
            Ok(n) => n,
        },
    };
    Ok(NetRule { host, port })
}

/// Addresses that are not one host: a connect to `0.0.0.0` or `::` reaches the local host's
/// loopback (a reviewer would not read `0.0.0.0:5432` as localhost), and multicast or
/// broadcast address many.
fn not_a_host(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) if v4.octets()[0] == 0 => {
            Some("an unspecified address (0.0.0.0/8 reaches the local host)")
        }
        IpAddr::V6(v6) if v6.is_unspecified() => {
            Some("the unspecified address (it reaches the local host)")
        }
        IpAddr::V4(v4) if v4.is_multicast() || v4.is_broadcast() => {
            Some("a multicast or broadcast address")
        }
        IpAddr::V6(v6) if v6.is_multicast() => Some("a multicast address"),
        _ => None,
    }
}

fn parse_host(h: &str) -> Result<HostPattern, (String, String)> {
    let err = |why: String, help: &str| Err((why, help.to_owned()));
    if h.is_empty() {
        return err(
            "has no host".into(),
            "write `host:port`, e.g. `api.example.com:443`",
        );
    }
    if h == "*" || h == "*.*" {
        return err(
            "would allow every host".into(),
            "list the hosts the skill needs, e.g. `api.example.com:443` or `*.example.com:443`",
        );
    }
    if !h.is_ascii() {
        return err(
            "is not ASCII".into(),
            "write internationalized names in their IDNA form (`xn--...`)",
        );
    }
    if h.bytes().any(|b| b.is_ascii_uppercase()) {
        return err(
            "has upper-case letters".into(),
            &format!("write it in lower case: `{}`", h.to_ascii_lowercase()),
        );
    }
    if h.ends_with('.') {
        return err(
            "ends with a dot".into(),
            &format!("write `{}`", h.trim_end_matches('.')),
        );
    }
    if let Ok(ip) = h.parse::<Ipv4Addr>() {
        if let Some(why) = not_a_host(IpAddr::V4(ip)) {
            return err(format!("is {why}"), "name the host's own address or name");
        }
        return Ok(HostPattern::Ip(IpAddr::V4(ip)));
    }
    if h.contains(':') {
        return err(
            "looks like an IPv6 address without brackets".into(),
            "write IPv6 addresses as `[2001:db8::1]:443`",
        );
    }
    let (wild, name) = match h.strip_prefix("*.") {
        Some(rest) => (true, rest),
        None => (false, h),
    };
    let labels: Vec<&str> = name.split('.').collect();
    let last = labels.last().copied().unwrap_or_default();
    if last.bytes().all(|b| b.is_ascii_digit()) || last.starts_with("0x") {
        return err(
            "is an IP address in an unusual spelling".into(),
            "write IPv4 addresses as four decimal numbers, e.g. `192.0.2.10`",
        );
    }
    if name.len() > 253 {
        return err(
            "is longer than 253 characters".into(),
            "use a valid DNS name",
        );
    }
    for label in &labels {
        let ok = !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !ok {
            return err(
                format!("has an invalid label `{label}`"),
                "use letters, digits and hyphens; `*.` is allowed only as the first label",
            );
        }
    }
    if wild {
        if labels.len() < 2 {
            return err(
                "covers a whole top-level domain".into(),
                "name at least two labels after `*.`, e.g. `*.example.com`",
            );
        }
        return Ok(HostPattern::Wildcard {
            suffix: name.to_owned(),
        });
    }
    Ok(HostPattern::Exact(name.to_owned()))
}

/// Parses one limit value in the unit of `kind`, checking bounds.
pub fn parse_limit(kind: LimitKind, v: &str) -> Result<u64, String> {
    if v.starts_with('-') {
        return Err("limits cannot be negative".into());
    }
    let split = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (digits, suffix) = v.split_at(split);
    if digits.is_empty() {
        return Err(format!("`{v}` does not start with a number"));
    }
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("`{digits}` is too large"))?;
    let factor: u64 = match (kind.unit(), suffix) {
        (LimitUnit::Count, "") | (LimitUnit::Bytes, "") => 1,
        (LimitUnit::Bytes, "K") => 1 << 10,
        (LimitUnit::Bytes, "M") => 1 << 20,
        (LimitUnit::Bytes, "G") => 1 << 30,
        (LimitUnit::Duration, "ms") => 1,
        (LimitUnit::Duration, "s") => 1000,
        (LimitUnit::Duration, "m") => 60_000,
        (LimitUnit::Duration, "h") => 3_600_000,
        (LimitUnit::Duration, "") => return Err(format!("`{v}` has no unit; write e.g. `{v}s`")),
        (LimitUnit::Bytes, s) => return Err(format!("unknown size suffix `{s}`; use K, M or G")),
        (LimitUnit::Duration, s) => {
            return Err(format!("unknown time unit `{s}`; use ms, s, m or h"));
        }
        (LimitUnit::Count, s) => return Err(format!("`{s}` after a count; write a plain number")),
    };
    let value = n
        .checked_mul(factor)
        .ok_or_else(|| format!("`{v}` is too large"))?;
    if value == 0 {
        return Err("zero would make every run fail".into());
    }
    let (lo, hi) = kind.bounds();
    if value < lo {
        return Err(format!("below the minimum of {}", kind.render(lo)));
    }
    if value > hi {
        return Err(format!("above the maximum of {}", kind.render(hi)));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_patterns() {
        assert!(dangerous_env("LD_PRELOAD").is_some());
        assert!(dangerous_env("HTTPS_PROXY").is_some());
        assert!(dangerous_env("no_proxy").is_some());
        assert!(dangerous_env("NODE_OPTIONS").is_some());
        assert!(dangerous_env("OPEN_METEO_UNITS").is_none());
        assert!(dangerous_env("PYTHONIOENCODING").is_none());
        // Regression from review: urllib honours any case of *_proxy.
        assert!(dangerous_env("HTTPS_Proxy").is_some());
        assert!(dangerous_env("Ld_Preload").is_some());
    }

    #[test]
    fn net_rules() {
        let ok = |t: &str| parse_net_rule(t).expect(t).to_string();
        assert_eq!(ok("api.example.com"), "api.example.com:443");
        assert_eq!(ok("api.example.com:8080"), "api.example.com:8080");
        assert_eq!(ok("*.example.com:443"), "*.example.com:443");
        assert_eq!(ok("192.0.2.1:80"), "192.0.2.1:80");
        assert_eq!(ok("[2001:db8::1]:443"), "[2001:db8::1]:443");
        for bad in [
            "*",
            "*.com",
            "API.example.com",
            "example.com.",
            "2130706433",
            "0x7f.1",
            "127.1",
            "[::ffff:127.0.0.1]:80",
            "example.com:0",
            "example.com:65536",
            "example.com:080",
            "bad_label.com",
            "-x.com",
            "exämple.com",
            "::1",
            // Not one host: a connect to the unspecified address reaches the local host.
            "0.0.0.0:5432",
            "0.1.2.3:80",
            "[::]:80",
            "224.0.0.1:80",
            "255.255.255.255:80",
            "[ff02::1]:80",
        ] {
            assert!(parse_net_rule(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn grant_paths() {
        assert_eq!(
            parse_grant_path("$WORKSPACE/out"),
            Ok(GrantPath::Placeholder {
                name: "WORKSPACE".into(),
                rest: "out".into()
            })
        );
        assert_eq!(
            parse_grant_path("/usr/share/dict"),
            Ok(GrantPath::Absolute("/usr/share/dict".into()))
        );
        for bad in [
            "~/x",
            "relative/x",
            "/a/../b",
            "/a/./b",
            "/a//b",
            "/a/",
            "$workspace",
            "$W/../x",
            "/data/*",
            "$W/",
            "/a/b;rm",
        ] {
            assert!(parse_grant_path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn broad_grants_are_flagged_under_placeholders_too() {
        let hooks = parse_grant_path("$WORKSPACE/.git/hooks").expect("parses");
        assert!(broad_grant(&hooks).is_some());
        assert!(broad_grant(&parse_grant_path("$WORKSPACE/out").expect("parses")).is_none());
        assert!(broad_grant(&parse_grant_path("/etc").expect("parses")).is_some());
    }

    #[test]
    fn limits() {
        assert_eq!(parse_limit(LimitKind::Memory, "128M"), Ok(128 << 20));
        assert_eq!(parse_limit(LimitKind::Cpu, "5s"), Ok(5000));
        assert_eq!(parse_limit(LimitKind::Pids, "16"), Ok(16));
        for (kind, bad) in [
            (LimitKind::Memory, "0"),
            (LimitKind::Memory, "-1M"),
            (LimitKind::Memory, "1T"),
            (LimitKind::Memory, "999999G"),
            (LimitKind::Cpu, "5"),
            (LimitKind::Pids, "0"),
            (LimitKind::Pids, "100000"),
            (LimitKind::Memory, "99999999999999999999999"),
        ] {
            assert!(parse_limit(kind, bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn suggestion_for_typos() {
        assert_eq!(suggest("skillcell.netwrok"), Some("skillcell.network"));
        assert_eq!(suggest("skillcell.zzzzzzzzzzzz"), None);
    }
}
