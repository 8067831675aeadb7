fn main() {
    println!("rampart");
}
