//! The sandbox contract: what a skill declares it needs, after validation.
//!
//! Produced only by `skillcell-manifest` from the `skillcell.*` keys of SKILL.md `metadata`.
//! Lists are sorted and free of duplicates, so that [`Contract::digest`] is canonical: two
//! SKILL.md files that grant the same things hash the same, whatever their key order or spacing.

use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::{Digest, SkillName};

/// Whether the skill declared a contract or runs under the default-blind profile.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Profile {
    /// No `skillcell.*` key at all: no network, no caller env, a read-only view of its own
    /// folder, a private scratch dir, its interpreter only, conservative limits.
    DefaultBlind,
    /// At least one `skillcell.*` key; everything not declared is still denied.
    Declared,
}

/// The validated sandbox contract of one skill version.
///
/// [`Contract::default_blind`] documents what is denied when nothing is declared; a declared
/// contract only ever adds the grants it lists to that baseline, and overrides limits.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contract {
    pub profile: Profile,
    /// Entry point, a normalized path relative to the skill folder (e.g. `scripts/run.py`).
    /// `None`: the caller names the script at run time, as public skills expect.
    pub entry: Option<String>,
    /// Runtime override; `None` means shebang, then extension.
    pub runtime: Option<Runtime>,
    /// Filesystem grants beyond the skill's own folder (read-only) and its scratch dir.
    pub fs: Vec<FsGrant>,
    /// Hosts the skill may reach through the egress proxy.
    pub network: Vec<NetRule>,
    /// Names of caller environment variables passed into the cell.
    pub env: Vec<EnvName>,
    /// Executables the skill may start besides its interpreter.
    pub exec: Vec<Executable>,
    /// Resource limits; every kind always has a value.
    pub limits: Limits,
    /// Other skills this one may call.
    pub calls: Vec<SkillName>,
}

impl Contract {
    /// The profile for skills that declare nothing. Denies: all network, every caller environment
    /// variable (the cell sets only PATH, HOME, LANG and TMPDIR), every path outside the skill's
    /// own folder (read-only) and its private scratch dir, every executable but the interpreter,
    /// calls to other skills. Limits are [`Limits::default_blind`].
    pub fn default_blind() -> Self {
        Self {
            profile: Profile::DefaultBlind,
            entry: None,
            runtime: None,
            fs: Vec::new(),
            network: Vec::new(),
            env: Vec::new(),
            exec: Vec::new(),
            limits: Limits::default_blind(),
            calls: Vec::new(),
        }
    }

    /// Canonical digest of the contract; approvals bind to it.
    pub fn digest(&self) -> Digest {
        let mut bytes = b"skillcell-contract-v1\n".to_vec();
        // Serializing plain structs, vectors and strings into a Vec cannot fail.
        bytes.extend(serde_json::to_vec(self).unwrap_or_default());
        Digest::of(&bytes)
    }

    /// What the contract lets the skill do, in plain words, one line per capability, for the
    /// person who installs or approves it.
    pub fn describe(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.profile == Profile::DefaultBlind {
            out.push("declares no contract: runs under the default-blind profile".to_owned());
        }
        match &self.entry {
            Some(e) => out.push(format!("runs {e}")),
            None => out.push("runs the script the caller names, from its own folder".to_owned()),
        }
        if let Some(r) = self.runtime {
            out.push(format!("with the {} runtime", r.as_str()));
        }
        let wasm = self.runtime == Some(Runtime::Wasm)
            || (self.runtime.is_none()
                && self
                    .entry
                    .as_deref()
                    .is_some_and(|e| e.ends_with(".wasm") || e.ends_with(".wat")));
        if wasm {
            out.push("runs in the WASM cell: reads its own folder (read-only)".to_owned());
        } else {
            out.push("reads its own folder (read-only) and a private scratch dir".to_owned());
        }
        for g in &self.fs {
            let what = match g.access {
                Access::Read => "reads",
                Access::Write => "reads and writes",
            };
            match &g.path {
                GrantPath::Placeholder { .. } => {
                    out.push(format!("{what} {} (a path the caller supplies)", g.path));
                }
                GrantPath::Absolute(_) => out.push(format!("{what} {} on the host", g.path)),
            }
        }
        if self.network.is_empty() {
            out.push("no network".to_owned());
        } else {
            let hosts: Vec<String> = self.network.iter().map(ToString::to_string).collect();
            out.push(format!(
                "connects to {} through the egress proxy",
                hosts.join(", ")
            ));
        }
        if self.env.is_empty() {
            out.push("sees none of the caller's environment variables".to_owned());
        } else {
            let names: Vec<&str> = self.env.iter().map(|e| e.0.as_str()).collect();
            out.push(format!("sees the caller's {}", names.join(", ")));
        }
        if wasm {
            out.push("starts no program".to_owned());
        } else if self.exec.is_empty() {
            out.push("starts no program but its interpreter".to_owned());
        } else {
            let exes: Vec<String> = self.exec.iter().map(ToString::to_string).collect();
            out.push(format!("may start {}", exes.join(", ")));
        }
        if !self.calls.is_empty() {
            let calls: Vec<&str> = self.calls.iter().map(SkillName::as_str).collect();
            out.push(format!("may call the skills {}", calls.join(", ")));
        }
        out.push(format!("limits: {}", self.limits));
        out
    }

    /// Placeholders (`$WORKSPACE`, …) the caller must supply at run time, sorted, no duplicates.
    pub fn placeholders(&self) -> Vec<&str> {
        let mut out: Vec<&str> = self
            .fs
            .iter()
            .filter_map(|g| match &g.path {
                GrantPath::Placeholder { name, .. } => Some(name.as_str()),
                GrantPath::Absolute(_) => None,
            })
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }
}

/// Interpreter families a skill can ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Runtime {
    Python3,
    Bash,
    Sh,
    Node,
    Wasm,
}

impl Runtime {
    pub const ALL: [Runtime; 5] = [
        Runtime::Python3,
        Runtime::Bash,
        Runtime::Sh,
        Runtime::Node,
        Runtime::Wasm,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Python3 => "python3",
            Self::Bash => "bash",
            Self::Sh => "sh",
            Self::Node => "node",
            Self::Wasm => "wasm",
        }
    }

    pub fn from_keyword(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// Read-only or read-write.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Access {
    Read,
    Write,
}

/// A path a grant names: absolute and normalized, or rooted at a caller-supplied placeholder.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantPath {
    /// `/usr/share/dict`: no `.`/`..` components, no repeated or trailing slash.
    Absolute(String),
    /// `$WORKSPACE` or `$WORKSPACE/out`: `name` is `WORKSPACE`, `rest` the normalized relative
    /// remainder (empty for the placeholder itself).
    Placeholder { name: String, rest: String },
}

impl fmt::Display for GrantPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Absolute(p) => f.write_str(p),
            Self::Placeholder { name, rest } if rest.is_empty() => write!(f, "${name}"),
            Self::Placeholder { name, rest } => write!(f, "${name}/{rest}"),
        }
    }
}

/// One filesystem grant.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct FsGrant {
    pub path: GrantPath,
    pub access: Access,
}

/// Which hosts a network rule matches.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HostPattern {
    /// A lowercase ASCII DNS name without trailing dot (`api.example.com`).
    Exact(String),
    /// `*.example.com`: any name with at least one more label in front of `suffix`
    /// (`example.com` itself is not matched).
    Wildcard { suffix: String },
    /// An IP address literal, named explicitly.
    Ip(IpAddr),
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Exact(h) => f.write_str(h),
            Self::Wildcard { suffix } => write!(f, "*.{suffix}"),
            Self::Ip(IpAddr::V4(ip)) => write!(f, "{ip}"),
            Self::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]"),
        }
    }
}

/// One network grant: a host pattern and a TCP port.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct NetRule {
    pub host: HostPattern,
    pub port: u16,
}

impl fmt::Display for NetRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

/// The name of an environment variable the caller may pass in.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EnvName(pub String);

/// An executable the skill may start besides its interpreter.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Executable {
    /// A normalized absolute path (`/usr/bin/git`).
    Path(String),
    /// A bare program name (`git`), resolved by the runtime on a fixed system PATH.
    Name(String),
}

impl fmt::Display for Executable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Path(p) | Self::Name(p) => f.write_str(p),
        }
    }
}

/// The unit a limit is written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LimitUnit {
    /// `512K`, `128M`, `2G` (powers of 1024) or plain bytes.
    Bytes,
    /// `500ms`, `5s`, `2m`, `1h`.
    Duration,
    /// A plain number.
    Count,
}

/// The kinds of resource limit, as data: key, unit, bounds, default and meaning.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LimitKind {
    Memory,
    Cpu,
    Wall,
    Pids,
    Fsize,
    Output,
    Nofile,
    Tmp,
    Egress,
}

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;
const GIB: u64 = 1024 * MIB;
const SEC: u64 = 1000;

impl LimitKind {
    pub const ALL: [LimitKind; 9] = [
        LimitKind::Memory,
        LimitKind::Cpu,
        LimitKind::Wall,
        LimitKind::Pids,
        LimitKind::Fsize,
        LimitKind::Output,
        LimitKind::Nofile,
        LimitKind::Tmp,
        LimitKind::Egress,
    ];

    pub const fn key(self) -> &'static str {
        match self {
            Self::Memory => "memory",
            Self::Cpu => "cpu",
            Self::Wall => "wall",
            Self::Pids => "pids",
            Self::Fsize => "fsize",
            Self::Output => "output",
            Self::Nofile => "nofile",
            Self::Tmp => "tmp",
            Self::Egress => "egress",
        }
    }

    pub fn from_key(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.key() == s)
    }

    pub const fn unit(self) -> LimitUnit {
        match self {
            Self::Memory | Self::Fsize | Self::Output | Self::Tmp | Self::Egress => {
                LimitUnit::Bytes
            }
            Self::Cpu | Self::Wall => LimitUnit::Duration,
            Self::Pids | Self::Nofile => LimitUnit::Count,
        }
    }

    /// Inclusive bounds, in bytes, milliseconds or a count. Values outside are absurd for a
    /// skill and refused at lint time.
    pub const fn bounds(self) -> (u64, u64) {
        match self {
            Self::Memory => (4 * MIB, 16 * GIB),
            Self::Cpu => (100, 3600 * SEC),
            Self::Wall => (100, 24 * 3600 * SEC),
            Self::Pids => (1, 4096),
            Self::Fsize => (KIB, 16 * GIB),
            Self::Output => (KIB, GIB),
            Self::Nofile => (8, 65536),
            Self::Tmp => (MIB, 16 * GIB),
            Self::Egress => (KIB, 64 * GIB),
        }
    }

    /// The default-blind value.
    pub const fn default_blind(self) -> u64 {
        match self {
            Self::Memory => 256 * MIB,
            Self::Cpu => 10 * SEC,
            Self::Wall => 30 * SEC,
            Self::Pids => 32,
            Self::Fsize => 16 * MIB,
            Self::Output => MIB,
            Self::Nofile => 64,
            Self::Tmp => 64 * MIB,
            Self::Egress => 64 * MIB,
        }
    }

    pub const fn meaning(self) -> &'static str {
        match self {
            Self::Memory => "memory of all processes in the cell together",
            Self::Cpu => "CPU time of all processes in the cell together",
            Self::Wall => "wall-clock time before every process in the cell is killed",
            Self::Pids => "processes and threads alive at once",
            Self::Fsize => "largest file the skill may write",
            Self::Output => "bytes kept of stdout and of stderr each; the rest is cut",
            Self::Nofile => "open file descriptors per process",
            Self::Tmp => "size of the private scratch dir (/tmp and HOME)",
            Self::Egress => "bytes through the egress proxy, both directions together",
        }
    }

    /// Renders a value of this kind the way the contract grammar writes it.
    pub fn render(self, value: u64) -> String {
        match self.unit() {
            LimitUnit::Count => value.to_string(),
            LimitUnit::Bytes => {
                for (size, suffix) in [(GIB, "G"), (MIB, "M"), (KIB, "K")] {
                    if value >= size && value.is_multiple_of(size) {
                        return format!("{}{suffix}", value / size);
                    }
                }
                value.to_string()
            }
            LimitUnit::Duration => {
                for (size, suffix) in [(3600 * SEC, "h"), (60 * SEC, "m"), (SEC, "s")] {
                    if value >= size && value.is_multiple_of(size) {
                        return format!("{}{suffix}", value / size);
                    }
                }
                format!("{value}ms")
            }
        }
    }
}

/// Resource limits, one value per [`LimitKind`], in bytes, milliseconds or counts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    pub memory: u64,
    pub cpu_ms: u64,
    pub wall_ms: u64,
    pub pids: u64,
    pub fsize: u64,
    pub output: u64,
    pub nofile: u64,
    pub tmp: u64,
    pub egress: u64,
}

impl Limits {
    /// Conservative limits for skills that declare none: 256M memory, 10s CPU, 30s wall,
    /// 32 processes, 16M files, 1M of output, 64 fds, 64M scratch, 64M through the egress proxy.
    pub fn default_blind() -> Self {
        let mut l = Self {
            memory: 0,
            cpu_ms: 0,
            wall_ms: 0,
            pids: 0,
            fsize: 0,
            output: 0,
            nofile: 0,
            tmp: 0,
            egress: 0,
        };
        for kind in LimitKind::ALL {
            l.set(kind, kind.default_blind());
        }
        l
    }

    pub fn get(&self, kind: LimitKind) -> u64 {
        match kind {
            LimitKind::Memory => self.memory,
            LimitKind::Cpu => self.cpu_ms,
            LimitKind::Wall => self.wall_ms,
            LimitKind::Pids => self.pids,
            LimitKind::Fsize => self.fsize,
            LimitKind::Output => self.output,
            LimitKind::Nofile => self.nofile,
            LimitKind::Tmp => self.tmp,
            LimitKind::Egress => self.egress,
        }
    }

    pub fn set(&mut self, kind: LimitKind, value: u64) {
        let slot = match kind {
            LimitKind::Memory => &mut self.memory,
            LimitKind::Cpu => &mut self.cpu_ms,
            LimitKind::Wall => &mut self.wall_ms,
            LimitKind::Pids => &mut self.pids,
            LimitKind::Fsize => &mut self.fsize,
            LimitKind::Output => &mut self.output,
            LimitKind::Nofile => &mut self.nofile,
            LimitKind::Tmp => &mut self.tmp,
            LimitKind::Egress => &mut self.egress,
        };
        *slot = value;
    }
}

impl fmt::Display for Limits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = LimitKind::ALL
            .iter()
            .map(|k| format!("{}={}", k.key(), k.render(self.get(*k))))
            .collect();
        f.write_str(&parts.join(" "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_within_bounds() {
        for kind in LimitKind::ALL {
            let (lo, hi) = kind.bounds();
            let v = kind.default_blind();
            assert!(lo <= v && v <= hi, "{kind:?}");
        }
    }

    #[test]
    fn render_is_compact() {
        assert_eq!(LimitKind::Memory.render(128 * MIB), "128M");
        assert_eq!(LimitKind::Cpu.render(5000), "5s");
        assert_eq!(LimitKind::Cpu.render(1500), "1500ms");
        assert_eq!(LimitKind::Pids.render(16), "16");
        assert_eq!(
            Limits::default_blind().to_string(),
            "memory=256M cpu=10s wall=30s pids=32 fsize=16M output=1M nofile=64 tmp=64M egress=64M"
        );
    }

    #[test]
    fn digest_depends_on_grants() {
        let a = Contract::default_blind();
        let mut b = a.clone();
        b.env.push(EnvName("TZ".into()));
        assert_ne!(a.digest(), b.digest());
        assert_eq!(a.digest(), Contract::default_blind().digest());
    }
}
