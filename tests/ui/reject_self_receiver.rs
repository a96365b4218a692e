struct Calculator;

impl Calculator {
    #[pymw::task]
    fn square(&self, x: u64) -> u64 {
        x * x
    }
}

fn main() {}
