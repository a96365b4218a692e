// No `Serialize`/`Deserialize`: the value cannot travel to a worker.
struct Point {
    x: f64,
    y: f64,
}

#[pymw::task]
fn norm(scale: f64, point: Point) -> f64 {
    scale * (point.x * point.x + point.y * point.y).sqrt()
}

fn main() {}
