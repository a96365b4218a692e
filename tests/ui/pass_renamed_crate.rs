extern crate pymw as my_pymw;

#[my_pymw::task(crate = "my_pymw", name = "renamed::square")]
fn square(x: u64) -> u64 {
    x * x
}

#[my_pymw::main(crate = "my_pymw")]
fn main() {
    let handle: my_pymw::Task<u64, u64> = square::task();
    assert_eq!(handle.name(), "renamed::square");
    assert_eq!(square::NAME, "renamed::square");
    assert_eq!(square(4), 16);
}
