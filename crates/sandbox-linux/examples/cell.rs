//! Runs one cell from a JSON `CellSpec` file: `cargo run --example cell -- spec.json`.
//! Stdin of this program is passed to the cell; the enforcement report goes to stderr as JSON.

use std::io::Read;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args().nth(1).ok_or("usage: cell SPEC.json")?;
    let spec: skillcell_sandbox::CellSpec = serde_json::from_slice(&std::fs::read(path)?)?;
    let cell = skillcell_sandbox_linux::PreparedCell::prepare()?;
    let mut input = Vec::new();
    if std::env::var_os("CELL_STDIN").is_some() {
        std::io::stdin().read_to_end(&mut input)?;
    }
    let report = cell.run(
        &spec,
        &input,
        &mut std::io::stdout(),
        &mut std::io::stderr(),
    )?;
    eprintln!("{}", serde_json::to_string_pretty(&report)?);
    std::process::exit(report.exit_code());
}
