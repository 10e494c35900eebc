pub mod scrape {
    pub const HANDLED_TOTAL: &str = "x";
    pub const HANDLING_SECONDS: &str = "y";
    #[derive(Debug, Clone, Default)]
    pub struct CallStats { pub requests: f64, pub errors: f64 }
    impl CallStats {
        pub fn from_samples(_s: &[()], _v: &str) -> Self { Self::default() }
        pub fn delta(&self, _o: &Self) -> Self { self.clone() }
        pub fn add(&mut self, _o: &Self) {}
        pub fn quantile(&self, _q: f64) -> Option<f64> { None }
    }
    pub async fn fetch(_a: &str, _t: std::time::Duration) -> Result<Vec<()>, String> { Ok(vec![]) }
}
