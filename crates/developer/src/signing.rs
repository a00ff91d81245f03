//! Signatures: an author vouches for exactly one tree and one contract.
//!
//! `skillcell sign DIR` writes [`SIGNATURE_FILE`] into the skill folder: ed25519 over
//! `skillcell-signature-v1\nname <name>\ntree <tree hash>\ncontract <contract hash>\n`, where
//! the tree hash is the folder's ([`tree::hash_of`]) without the signature file itself. Install
//! recomputes both hashes from what it staged: a signature that does not verify, or names
//! other content, refuses the install whatever the policy (it is a sign of tampering); a valid
//! one is trusted when its key is in the operator's trust list (`config/trusted-keys`), and
//! the operator can require a trusted signature (`config/admission.conf`,
//! `require-signature = yes`).
//!
//! A signature says who vouches for the bytes; it approves nothing. Approval stays a person's
//! act at a terminal.

use std::fmt;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use skillcell_store::Home;
use skillcell_store::tree::{self, TreeListing};
use skillcell_types::Digest;

/// The signature's file name, at the top of the skill folder.
pub const SIGNATURE_FILE: &str = "skillcell.sig";
const FORMAT: &str = "skillcell-signature-v1";
const SECRET_HEADER: &str = "skillcell-ed25519-secret-v1";
/// Largest signature file read.
const MAX_SIGNATURE_BYTES: u64 = 4096;

/// Errors of keys, signing and the trust list.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{path}: {why}")]
    BadFile { path: PathBuf, why: String },
    #[error("`{0}` is not a public key: expected ed25519:<64 hex digits>")]
    BadKey(String),
    #[error("SKILL.md is not valid:\n{0}")]
    Manifest(skillcell_manifest::Report),
    #[error("{0} already exists; refusing to overwrite a key")]
    Exists(PathBuf),
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> SignError + '_ {
    move |source| SignError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// An ed25519 public key, written `ed25519:<hex>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PublicKey(VerifyingKey);

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ed25519:{}", hex::encode(self.0.as_bytes()))
    }
}

impl FromStr for PublicKey {
    type Err = SignError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || SignError::BadKey(s.to_owned());
        let hex_part = s.strip_prefix("ed25519:").ok_or_else(bad)?;
        let bytes: [u8; 32] = hex::decode(hex_part)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(bad)?;
        VerifyingKey::from_bytes(&bytes)
            .map(Self)
            .map_err(|_| bad())
    }
}

impl Serialize for PublicKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for PublicKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The signature file's content.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignatureFile {
    pub format: String,
    pub name: String,
    /// The tree hash of the folder without this file.
    pub tree_hash: Digest,
    pub contract_hash: Digest,
    pub key: PublicKey,
    /// 64 bytes, hex.
    pub signature: String,
}

fn message(name: &str, tree_hash: &Digest, contract_hash: &Digest) -> Vec<u8> {
    format!("{FORMAT}\nname {name}\ntree {tree_hash}\ncontract {contract_hash}\n").into_bytes()
}

/// The tree hash a signature covers: the listing without the signature file.
pub fn signed_tree_hash(listing: &TreeListing) -> Digest {
    let files: Vec<_> = listing
        .files
        .iter()
        .filter(|f| f.path != SIGNATURE_FILE)
        .cloned()
        .collect();
    tree::hash_of(&files)
}

/// Creates a new signing key at `path` (mode 0600, never overwriting) and returns its public
/// key.
pub fn keygen(path: &Path) -> Result<PublicKey, SignError> {
    let mut seed = [0u8; 32];
    let mut filled = 0;
    while filled < seed.len() {
        let n = rustix::rand::getrandom(&mut seed[filled..], rustix::rand::GetRandomFlags::empty())
            .map_err(|e| io_err(path)(e.into()))?;
        filled += n;
    }
    let key = SigningKey::from_bytes(&seed);
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent).map_err(io_err(parent))?;
    }
    let mut file = match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            return Err(SignError::Exists(path.to_path_buf()));
        }
        Err(e) => return Err(io_err(path)(e)),
    };
    let public = PublicKey(key.verifying_key());
    writeln!(file, "{SECRET_HEADER} {}", hex::encode(seed))
        .and_then(|()| file.sync_all())
        .map_err(io_err(path))?;
    Ok(public)
}

/// Reads a signing key, refusing one that others than its owner may read.
fn load_key(path: &Path) -> Result<SigningKey, SignError> {
    let bad = |why: &str| SignError::BadFile {
        path: path.to_path_buf(),
        why: why.to_owned(),
    };
    let meta = fs::metadata(path).map_err(io_err(path))?;
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(bad(
            "the key is readable by others than its owner; `chmod 600` it (or make a new one)",
        ));
    }
    let text = fs::read_to_string(path).map_err(io_err(path))?;
    let hex_part = text
        .trim_end()
        .strip_prefix(SECRET_HEADER)
        .map(str::trim)
        .ok_or_else(|| bad("not a skillcell signing key (see `skillcell keygen`)"))?;
    let seed: [u8; 32] = hex::decode(hex_part)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| bad("the key is damaged"))?;
    Ok(SigningKey::from_bytes(&seed))
}

/// Signs the skill folder `dir` with the key at `key_path`: writes (or replaces)
/// `dir/skillcell.sig`. The SKILL.md must be valid, since the contract hash is signed.
pub fn sign_dir(dir: &Path, key_path: &Path) -> Result<SignatureFile, SignError> {
    let key = load_key(key_path)?;
    let loaded = skillcell_manifest::load_dir(dir).map_err(SignError::Manifest)?;
    let listing = tree::hash_dir(dir).map_err(|e| SignError::BadFile {
        path: dir.to_path_buf(),
        why: e.to_string(),
    })?;
    let name = loaded.manifest.name.as_str().to_owned();
    let tree_hash = signed_tree_hash(&listing);
    let contract_hash = loaded.manifest.contract.digest();
    let signature = key.sign(&message(&name, &tree_hash, &contract_hash));
    let file = SignatureFile {
        format: FORMAT.to_owned(),
        name,
        tree_hash,
        contract_hash,
        key: PublicKey(key.verifying_key()),
        signature: hex::encode(signature.to_bytes()),
    };
    let path = dir.join(SIGNATURE_FILE);
    let mut text = serde_json::to_string_pretty(&file).map_err(|e| SignError::BadFile {
        path: path.clone(),
        why: e.to_string(),
    })?;
    text.push('\n');
    let tmp = dir.join(format!(".{SIGNATURE_FILE}.tmp"));
    fs::write(&tmp, text).map_err(io_err(&tmp))?;
    fs::rename(&tmp, &path).map_err(io_err(&path))?;
    Ok(file)
}

/// What install learned of a staged folder's signature.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum SignatureCheck {
    Unsigned,
    /// It verifies and covers exactly this tree and contract.
    Valid {
        key: PublicKey,
        /// The operator's label for the key, when it is trusted.
        trusted_as: Option<String>,
    },
    /// Present but not a valid signature of this content: install refuses it.
    Invalid {
        why: String,
    },
}

/// Checks the signature in the staged folder `dir` against the hashes install computed.
pub fn check(
    dir: &Path,
    listing: &TreeListing,
    name: &str,
    contract_hash: &Digest,
    trust: &TrustList,
) -> SignatureCheck {
    if !listing.files.iter().any(|f| f.path == SIGNATURE_FILE) {
        return SignatureCheck::Unsigned;
    }
    let invalid = |why: String| SignatureCheck::Invalid { why };
    let path = dir.join(SIGNATURE_FILE);
    let text = match read_bounded(&path) {
        Ok(t) => t,
        Err(e) => return invalid(format!("cannot read it: {e}")),
    };
    let file: SignatureFile = match serde_json::from_str(&text) {
        Ok(f) => f,
        Err(e) => return invalid(format!("not a skillcell signature: {e}")),
    };
    if file.format != FORMAT {
        return invalid(format!("unknown format `{}`", file.format));
    }
    let Some(signature) = hex::decode(&file.signature)
        .ok()
        .and_then(|b| <[u8; 64]>::try_from(b).ok())
        .map(|b| Signature::from_bytes(&b))
    else {
        return invalid("the signature is not 64 bytes of hex".into());
    };
    let tree_hash = signed_tree_hash(listing);
    if file
        .key
        .0
        .verify_strict(&message(name, &tree_hash, contract_hash), &signature)
        .is_err()
    {
        let what = if file.name != name {
            format!("it was made for `{}`", file.name)
        } else if file.tree_hash != tree_hash {
            "the files changed after signing".to_owned()
        } else if file.contract_hash != *contract_hash {
            "the contract changed after signing".to_owned()
        } else {
            "the signature does not verify".to_owned()
        };
        return invalid(format!("it does not cover this content: {what}"));
    }
    SignatureCheck::Valid {
        key: file.key,
        trusted_as: trust.label_of(&file.key).map(str::to_owned),
    }
}

fn read_bounded(path: &Path) -> io::Result<String> {
    use std::io::Read;
    let mut text = String::new();
    fs::File::open(path)?
        .take(MAX_SIGNATURE_BYTES + 1)
        .read_to_string(&mut text)?;
    if text.len() as u64 > MAX_SIGNATURE_BYTES {
        return Err(io::Error::other("larger than 4 KiB"));
    }
    Ok(text)
}

/// One trusted key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TrustedKey {
    pub key: PublicKey,
    pub label: String,
}

/// The operator's trusted keys: `config/trusted-keys`, one `ed25519:<hex> LABEL` per line,
/// `#` comments. A line that does not parse makes the whole list unreadable (fail closed).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct TrustList {
    pub keys: Vec<TrustedKey>,
}

impl TrustList {
    pub fn path(home: &Home) -> PathBuf {
        home.config_dir().join("trusted-keys")
    }

    /// Loads the list; a missing file is an empty list.
    pub fn load(home: &Home) -> Result<Self, SignError> {
        let path = Self::path(home);
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => return Err(io_err(&path)(e)),
        };
        let mut keys = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (key, label) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
            let key = key.parse().map_err(|e: SignError| SignError::BadFile {
                path: path.clone(),
                why: format!("line {}: {e}", n + 1),
            })?;
            keys.push(TrustedKey {
                key,
                label: label.trim().to_owned(),
            });
        }
        Ok(Self { keys })
    }

    pub fn label_of(&self, key: &PublicKey) -> Option<&str> {
        self.keys
            .iter()
            .find(|k| k.key == *key)
            .map(|k| k.label.as_str())
    }

    /// Adds `key` (replacing its label if present) and saves. Returns whether it was new.
    pub fn add(home: &Home, key: PublicKey, label: &str) -> Result<bool, SignError> {
        if label.chars().any(char::is_control) {
            return Err(SignError::BadFile {
                path: Self::path(home),
                why: "a label cannot contain control characters".into(),
            });
        }
        let mut list = Self::load(home)?;
        let new = list.label_of(&key).is_none();
        list.keys.retain(|k| k.key != key);
        list.keys.push(TrustedKey {
            key,
            label: label.to_owned(),
        });
        list.save(home)?;
        Ok(new)
    }

    /// Removes `key` and saves. Returns whether it was there.
    pub fn remove(home: &Home, key: &PublicKey) -> Result<bool, SignError> {
        let mut list = Self::load(home)?;
        let before = list.keys.len();
        list.keys.retain(|k| k.key != *key);
        let removed = list.keys.len() != before;
        if removed {
            list.save(home)?;
        }
        Ok(removed)
    }

    fn save(&self, home: &Home) -> Result<(), SignError> {
        let path = Self::path(home);
        let mut text = String::from("# skillcell trusted signing keys: ed25519:<hex> LABEL\n");
        for k in &self.keys {
            text.push_str(&format!("{} {}\n", k.key, k.label));
        }
        write_config(&path, &text)
    }
}

/// Writes an operator config file atomically (mode 0644).
pub(crate) fn write_config(path: &Path, text: &str) -> Result<(), SignError> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(io_err(dir))?;
    }
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, text).map_err(io_err(&tmp))?;
    fs::rename(&tmp, path).map_err(io_err(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn skill(dir: &Path) {
        fs::create_dir_all(dir.join("scripts")).expect("mkdir");
        fs::write(
            dir.join("SKILL.md"),
            "---\nname: signed\ndescription: A signed skill.\nmetadata:\n  skillcell.entry: scripts/run.py\n---\nBody.\n",
        )
        .expect("SKILL.md");
        fs::write(dir.join("scripts/run.py"), "print('hi')\n").expect("script");
    }

    fn checked(dir: &Path, trust: &TrustList) -> SignatureCheck {
        let listing = tree::hash_dir(dir).expect("hash");
        let loaded = skillcell_manifest::load_dir(dir).expect("manifest");
        check(
            dir,
            &listing,
            loaded.manifest.name.as_str(),
            &loaded.manifest.contract.digest(),
            trust,
        )
    }

    #[test]
    fn a_signature_covers_the_files_and_the_contract() {
        let tmp = tempfile::tempdir().expect("tmp");
        let dir = tmp.path().join("signed");
        skill(&dir);
        let key_path = tmp.path().join("keys/author.key");
        let public = keygen(&key_path).expect("keygen");
        assert!(matches!(keygen(&key_path), Err(SignError::Exists(_))));
        assert_eq!(
            fs::metadata(&key_path).expect("key").permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            checked(&dir, &TrustList::default()),
            SignatureCheck::Unsigned
        );

        sign_dir(&dir, &key_path).expect("sign");
        let trust = TrustList {
            keys: vec![TrustedKey {
                key: public,
                label: "alice".into(),
            }],
        };
        assert_eq!(
            checked(&dir, &trust),
            SignatureCheck::Valid {
                key: public,
                trusted_as: Some("alice".into())
            }
        );
        assert_eq!(
            checked(&dir, &TrustList::default()),
            SignatureCheck::Valid {
                key: public,
                trusted_as: None
            }
        );

        // A helper changed after signing.
        fs::write(dir.join("scripts/run.py"), "print('evil')\n").expect("edit");
        let c = checked(&dir, &trust);
        assert!(
            matches!(&c, SignatureCheck::Invalid { why } if why.contains("files changed")),
            "{c:?}"
        );
        fs::write(dir.join("scripts/run.py"), "print('hi')\n").expect("restore");
        assert!(matches!(
            checked(&dir, &trust),
            SignatureCheck::Valid { .. }
        ));

        // The contract widened after signing (SKILL.md is a file too, but the message says
        // which of the two moved first: the tree).
        let md = fs::read_to_string(dir.join("SKILL.md")).expect("md");
        fs::write(
            dir.join("SKILL.md"),
            md.replace(
                "  skillcell.entry",
                "  skillcell.network: evil.example:443\n  skillcell.entry",
            ),
        )
        .expect("widen");
        assert!(matches!(
            checked(&dir, &trust),
            SignatureCheck::Invalid { .. }
        ));
        fs::write(dir.join("SKILL.md"), md).expect("restore");

        // A signature by another key, the key swapped in the file: does not verify.
        let other = keygen(&tmp.path().join("other.key")).expect("keygen");
        let sig_path = dir.join(SIGNATURE_FILE);
        let original = fs::read_to_string(&sig_path).expect("sig");
        fs::write(
            &sig_path,
            original.replace(&public.to_string(), &other.to_string()),
        )
        .expect("swap key");
        assert!(matches!(
            checked(&dir, &trust),
            SignatureCheck::Invalid { .. }
        ));
        fs::write(&sig_path, "not json").expect("garbage");
        assert!(matches!(
            checked(&dir, &trust),
            SignatureCheck::Invalid { .. }
        ));
    }

    #[test]
    fn a_key_readable_by_others_is_refused() {
        let tmp = tempfile::tempdir().expect("tmp");
        let dir = tmp.path().join("signed");
        skill(&dir);
        let key_path = tmp.path().join("k");
        keygen(&key_path).expect("keygen");
        fs::set_permissions(&key_path, fs::Permissions::from_mode(0o644)).expect("chmod");
        assert!(matches!(
            sign_dir(&dir, &key_path),
            Err(SignError::BadFile { .. })
        ));
        assert!(!dir.join(SIGNATURE_FILE).exists());
    }

    #[test]
    fn the_trust_list_round_trips_and_fails_closed() {
        let tmp = tempfile::tempdir().expect("tmp");
        let home = Home::at(tmp.path().join("home")).expect("home");
        let a = keygen(&tmp.path().join("a")).expect("a");
        let b = keygen(&tmp.path().join("b")).expect("b");
        assert!(TrustList::add(&home, a, "alice").expect("add"));
        assert!(TrustList::add(&home, b, "bob").expect("add"));
        assert!(!TrustList::add(&home, a, "alice again").expect("relabel"));
        let list = TrustList::load(&home).expect("load");
        assert_eq!(list.label_of(&a), Some("alice again"));
        assert_eq!(list.label_of(&b), Some("bob"));
        assert!(TrustList::remove(&home, &b).expect("remove"));
        assert_eq!(TrustList::load(&home).expect("load").label_of(&b), None);
        assert!("ed25519:00".parse::<PublicKey>().is_err());
        assert!("rsa:abcd".parse::<PublicKey>().is_err());
        fs::write(TrustList::path(&home), "ed25519:zz broken\n").expect("break");
        assert!(TrustList::load(&home).is_err());
    }
}
