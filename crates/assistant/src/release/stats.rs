//! The statistics of a comparison: the two-proportion z-test (pooled), the
//! normal distribution it needs, and the sample size per arm that a
//! difference needs to be found at α = 0.05 with power 0.8.
//!
//! Owns: these formulas. Never: which metric they are applied to.

/// z for a two-sided α = 0.05.
pub const Z_ALPHA: f64 = 1.959_963_984_540_054;
/// z for power 0.8.
pub const Z_BETA: f64 = 0.841_621_233_572_914_3;

/// The standard normal CDF (erfc with a Chebyshev fit, |error| < 1.2e-7).
pub fn normal_cdf(z: f64) -> f64 {
    0.5 * erfc(-z / std::f64::consts::SQRT_2)
}

fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let r = t * (-z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96 + t * (0.096_784_18 + t * (-0.186_288_06 + t * (0.278_868_07 + t * (-1.135_203_98 + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77)))))))))
        .exp();
    if x >= 0.0 {
        r
    } else {
        2.0 - r
    }
}

/// A two-proportion test of `x1/n1` (control) against `x2/n2` (candidate).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct ZTest {
    /// Candidate minus control.
    pub diff: f64,
    pub z: f64,
    /// Two-sided.
    pub p_value: f64,
    /// The 95 % confidence interval of `diff` (unpooled standard error).
    pub ci_low: f64,
    pub ci_high: f64,
}

/// None when an arm is empty or both proportions are 0 or both 1 (no variance: nothing to test).
pub fn two_proportion(x1: u64, n1: u64, x2: u64, n2: u64) -> Option<ZTest> {
    if n1 == 0 || n2 == 0 {
        return None;
    }
    let (n1f, n2f) = (n1 as f64, n2 as f64);
    let (p1, p2) = (x1 as f64 / n1f, x2 as f64 / n2f);
    let p = (x1 + x2) as f64 / (n1f + n2f);
    let se = (p * (1.0 - p) * (1.0 / n1f + 1.0 / n2f)).sqrt();
    if se == 0.0 {
        return None;
    }
    let diff = p2 - p1;
    let z = diff / se;
    let se_u = (p1 * (1.0 - p1) / n1f + p2 * (1.0 - p2) / n2f).sqrt();
    Some(ZTest { diff, z, p_value: 2.0 * (1.0 - normal_cdf(z.abs())), ci_low: diff - Z_ALPHA * se_u, ci_high: diff + Z_ALPHA * se_u })
}

/// Conversations per arm needed to find a difference between proportions `p1` and `p2`
/// (two-sided α = 0.05, power 0.8); None when they are equal.
pub fn sample_size(p1: f64, p2: f64) -> Option<u64> {
    let d = (p2 - p1).abs();
    if d < 1e-12 {
        return None;
    }
    let p = (p1 + p2) / 2.0;
    let a = Z_ALPHA * (2.0 * p * (1.0 - p)).sqrt();
    let b = Z_BETA * (p1 * (1.0 - p1) + p2 * (1.0 - p2)).sqrt();
    Some(((a + b).powi(2) / (d * d)).ceil() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_normal_cdf_matches_known_values() {
        assert!((normal_cdf(0.0) - 0.5).abs() < 1e-7);
        assert!((normal_cdf(1.959_964) - 0.975).abs() < 1e-6);
        assert!((normal_cdf(-1.0) - 0.158_655_25).abs() < 1e-6);
        assert!((normal_cdf(3.0) - 0.998_650_1).abs() < 1e-6);
    }

    #[test]
    fn the_z_test_matches_a_worked_example() {
        // 200 / 1000 vs 250 / 1000: pooled p = 0.225, se = 0.018675, z = 2.677, p = 0.0074
        let t = two_proportion(200, 1000, 250, 1000).unwrap();
        assert!((t.diff - 0.05).abs() < 1e-12);
        assert!((t.z - 2.6774).abs() < 1e-3, "{t:?}");
        assert!((t.p_value - 0.00742).abs() < 2e-4, "{t:?}");
        assert!(t.ci_low > 0.0 && t.ci_high < 0.1);
        // the same rates on tiny samples are not significant
        assert!(two_proportion(2, 10, 3, 10).unwrap().p_value > 0.5);
        assert!(two_proportion(0, 10, 0, 10).is_none());
        assert!(two_proportion(1, 0, 1, 10).is_none());
    }

    #[test]
    fn the_sample_size_matches_the_textbook_formula() {
        // 0.20 vs 0.25 at α = 0.05, power 0.8: 1094 per arm (Fleiss without continuity correction)
        assert_eq!(sample_size(0.20, 0.25), Some(1094));
        assert!(sample_size(0.5, 0.6).unwrap() < sample_size(0.5, 0.55).unwrap());
        assert_eq!(sample_size(0.3, 0.3), None);
    }
}
