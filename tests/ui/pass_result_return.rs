#[pymw::task]
fn parse(text: String) -> Result<u64, std::num::ParseIntError> {
    text.parse()
}

#[pymw::task]
fn read_len(path: std::path::PathBuf) -> std::io::Result<u64> {
    Ok(std::fs::metadata(path)?.len())
}

fn main() {
    // The master receives the `Ok` type.
    let _: pymw::Task<String, u64> = parse::task();
    let _: pymw::Task<std::path::PathBuf, u64> = read_len::task();
    assert_eq!(parse("7".into()), Ok(7));
}
