#[derive(serde::Serialize, serde::Deserialize)]
struct Point {
    x: f64,
    y: f64,
}

#[pymw::task]
fn describe(label: String, point: Point, repeat: (u8, bool)) -> Vec<String> {
    let line = format!("{label}: ({}, {}) {}", point.x, point.y, repeat.1);
    vec![line; usize::from(repeat.0)]
}

fn main() {
    let _: pymw::Task<(String, Point, (u8, bool)), Vec<String>> = describe::task();
    assert_eq!(
        describe("p".into(), Point { x: 1.0, y: 2.0 }, (2, true)).len(),
        2
    );
}
