//! The rule table: every finding names one of these by its stable id. Ids never change
//! meaning; a retired rule keeps its id unused. `docs/scan.md` documents each one.

use serde::Serialize;
use skillcell_types::finding::Severity;

/// One rule: stable id, the severity its findings carry, what it catches, how to fix it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Rule {
    pub id: &'static str,
    pub severity: Severity,
    pub summary: &'static str,
    pub hint: &'static str,
}

macro_rules! rules {
    ($($variant:ident = $id:literal, $sev:ident, $summary:literal, $hint:literal;)*) => {
        /// Rule ids as an enum, so that the code cannot name a rule that does not exist.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub(crate) enum R { $($variant),* }

        static RULES: &[Rule] = &[$(Rule {
            id: $id,
            severity: Severity::$sev,
            summary: $summary,
            hint: $hint,
        }),*];
    };
}

rules! {
    // Code execution.
    PyExec = "py-exec", High,
        "Python eval/exec/compile of a value that is not a string literal",
        "do not evaluate code built at run time; parse data with json or ast.literal_eval";
    JsEval = "js-eval", High,
        "JavaScript eval, Function, new Function, vm.run* or a string timer of a non-literal",
        "do not evaluate code built at run time; parse data with JSON.parse";
    ShellEval = "shell-eval", High,
        "shell eval or source of a value built at run time",
        "call the commands directly instead of building a command line to evaluate";
    ExecLiteral = "exec-literal", Low,
        "eval/exec of a string literal",
        "write the code directly instead of evaluating a literal";
    ShellC = "shell-c", High,
        "a shell started with -c (sh -c, bash -c), in a script or in a process argv",
        "start the program directly with an argument list, without a shell";
    ShellString = "shell-string", Medium,
        "a command line run through a shell (os.system, shell=True, child_process.exec)",
        "pass an argument list (subprocess.run([...]), execFile) so no shell parses it";
    // Process spawning.
    ProcSpawn = "proc-spawn", Info,
        "starts a program (subprocess, os.system, child_process, a shell command)",
        "declare the program with `skillcell.exec:`";
    ProcSpawnDynamic = "proc-spawn-dynamic", Medium,
        "starts a program whose name is computed at run time",
        "start a fixed program named by a literal, and declare it with `skillcell.exec:`";
    // Network.
    NetUse = "net-use", Info,
        "uses a network API (socket, urllib, requests, httpx, aiohttp, fetch, http, curl, nc, ...)",
        "declare the hosts with `skillcell.network:`";
    // Environment and credentials.
    EnvEnumerate = "env-enumerate", Medium,
        "reads the whole environment or a variable whose name is computed",
        "read the variables by literal name and declare them with `skillcell.env:`";
    CredentialPath = "credential-path", High,
        "names a credential store (~/.ssh, id_rsa, ~/.aws, .netrc, .gnupg, .kube, .git-credentials, ...)",
        "skills get credentials only through declared environment variables; remove the path";
    // Files.
    FileWrite = "file-write", Info,
        "writes a file",
        "write under the scratch dir ($TMPDIR) or a path declared with `skillcell.fs.write:`";
    // Dynamic loading.
    DynamicImport = "dynamic-import", Medium,
        "imports a module whose name is computed (__import__, importlib, runpy, require(x), import(x))",
        "import modules by literal name";
    NativeFfi = "native-ffi", High,
        "loads native code through an FFI (ctypes, cffi, process.dlopen, ffi-napi, a .node addon)",
        "ship no native code; use the standard library or a declared program";
    NativeBinary = "native-binary", High,
        "ships a native binary (.so, .dylib, .dll, .node, .exe or an ELF/Mach-O/PE file)",
        "remove the binary; ship source, or depend on a declared system program";
    PythonBytecode = "python-bytecode", High,
        "ships Python bytecode (.pyc, .pyo), which runs instead of the source beside it",
        "remove the bytecode and __pycache__; ship source only";
    // Obfuscation.
    ObfuscatedExec = "obfuscated-exec", Critical,
        "decoded data (base64, hex, zlib, marshal, atob, base64 -d) is executed",
        "remove the payload: code that decodes and runs hidden code is refused";
    PyGetattrBuiltins = "py-getattr-builtins", Critical,
        "reaches eval/exec/system through getattr, __builtins__, globals() or a built-up name",
        "call functions by their plain name; names assembled at run time hide what runs";
    UnicodeLookalike = "unicode-lookalike", Critical,
        "an identifier in look-alike Unicode that Python folds (NFKC) to a dangerous name such as eval",
        "write identifiers in plain ASCII";
    UnicodeIdentifier = "unicode-identifier", Medium,
        "an identifier that Python's NFKC folding changes: it runs as a different name than it reads",
        "write the identifier in its NFKC form (usually plain ASCII)";
    LongLine = "long-line", Low,
        "a very long line in code (minified or packed code hides what it does)",
        "ship readable source";
    HighEntropyString = "high-entropy-string", Medium,
        "a long high-entropy string literal (an encoded or encrypted payload?)",
        "ship data as a readable file, and explain what it is";
    // Install hooks and persistence.
    InstallHook = "install-hook", High,
        "an install-time hook (setup.py, package.json preinstall/install/postinstall/prepare)",
        "remove the hook: skills are not installed with pip or npm, and hooks run with the installer's rights";
    Persistence = "persistence", Critical,
        "names a persistence target (.bashrc, .profile, .git/hooks, .pth, sitecustomize, crontab, authorized_keys, ...)",
        "a skill must not change files that run later in other programs; remove it";
    // SKILL.md and other text.
    RemotePipeExec = "remote-pipe-exec", Critical,
        "downloads and runs code (curl ... | sh, wget ... | bash, bash -c \"$(curl ...)\", source <(curl ...))",
        "ship the script in the skill folder, where it is scanned and pinned by the approval";
    HiddenUnicode = "hidden-unicode", Critical,
        "invisible or reordering characters (bidi controls, zero-width, tag characters)",
        "remove them: they make text read differently from what an agent or interpreter sees";
    HideFromUser = "hide-from-user", High,
        "instructions to hide actions from the user (\"don't tell the user\", \"silently\", ...)",
        "skills must not ask the agent to conceal what it does; remove the instruction";
    // Declared vs used.
    UndeclaredNetwork = "undeclared-network", Critical,
        "uses the network but the contract declares no `skillcell.network` rule",
        "declare the hosts: `skillcell.network: HOST:PORT`";
    UndeclaredHost = "undeclared-host", Critical,
        "contacts a host no `skillcell.network` rule matches",
        "declare the host: `skillcell.network: HOST:PORT`";
    UrlUndeclared = "url-undeclared", Low,
        "a URL to an undeclared host, in a skill where no network API was seen",
        "declare the host with `skillcell.network:` if the skill contacts it";
    UndeclaredExec = "undeclared-exec", Critical,
        "starts a program the contract does not list in `skillcell.exec`",
        "declare the program: `skillcell.exec: NAME`";
    UndeclaredEnv = "undeclared-env", High,
        "reads an environment variable the contract does not list in `skillcell.env`",
        "declare it: `skillcell.env: NAME` (the cell passes only declared variables)";
    UndeclaredWrite = "undeclared-write", High,
        "writes an absolute path outside the scratch dir that no `skillcell.fs.write` grant covers",
        "write under $TMPDIR, or declare the path with `skillcell.fs.write:`";
    UnusedGrant = "unused-grant", Info,
        "the contract grants something the code was not seen to use",
        "remove the grant if the skill does not need it (least privilege)";
    // The walk itself.
    Symlink = "symlink", High,
        "a symbolic link in the skill folder (not followed, not scanned)",
        "replace the link with the file it points to";
    SpecialFile = "special-file", High,
        "a FIFO, socket or device node in the skill folder",
        "remove it: a skill folder holds regular files and directories";
    FileTooLarge = "file-too-large", High,
        "a file over the operator's size bound, not scanned",
        "make the file smaller, or ask the operator to raise the bound";
    TooManyFiles = "too-many-files", High,
        "more entries than the operator's bound (files or depth); the rest was not scanned",
        "ship fewer files, or ask the operator to raise the bound";
    Unreadable = "unreadable", High,
        "a file that could not be read, not scanned",
        "make the file a readable regular file";
    ParseError = "parse-error", Low,
        "source the parser could not fully parse; the scan of it may be incomplete",
        "ship code that parses with the current interpreter";
}

impl R {
    pub(crate) fn rule(self) -> &'static Rule {
        &RULES[self as usize]
    }
}

/// Every rule, in a fixed order.
pub fn rules() -> &'static [Rule] {
    RULES
}

/// The rule with this id.
pub fn rule(id: &str) -> Option<&'static Rule> {
    RULES.iter().find(|r| r.id == id)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn ids_are_unique_kebab_case_and_documented() {
        let mut seen = BTreeSet::new();
        for r in rules() {
            assert!(seen.insert(r.id), "duplicate id {}", r.id);
            assert!(
                r.id.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
                "{}",
                r.id
            );
            assert!(!r.summary.is_empty() && !r.hint.is_empty(), "{}", r.id);
        }
        let doc = include_str!("../../../docs/scan.md");
        for r in rules() {
            assert!(
                doc.contains(&format!("`{}`", r.id)),
                "docs/scan.md lacks {}",
                r.id
            );
        }
    }

    #[test]
    fn enum_indexes_the_table() {
        assert_eq!(R::PyExec.rule().id, "py-exec");
        assert_eq!(R::ParseError.rule().id, "parse-error");
        assert_eq!(
            rule("undeclared-exec").map(|r| r.severity),
            Some(Severity::Critical)
        );
        assert_eq!(rule("no-such-rule"), None);
    }
}
