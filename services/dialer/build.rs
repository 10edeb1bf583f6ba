fn main() {
    // `sqlx::migrate!` embeds the migrations at compile time: rebuild when they change.
    println!("cargo:rerun-if-changed=migrations");
}
