//! Checksums and structure rules that turn digit patterns into validated PII:
//! Luhn (payment cards), ISO 13616 mod-97 (IBAN), ISO 7064 MOD 11,10 (German
//! Steuer-ID), the Rentenversicherungsnummer check digit, US SSN ranges.
//! Pure functions on already-extracted strings; no pattern matching here.

/// Digits of `s`, ignoring everything else.
pub fn digits(s: &str) -> Vec<u8> {
    s.bytes().filter(u8::is_ascii_digit).map(|b| b - b'0').collect()
}

/// Luhn check over all digits of `s` (separators ignored).
pub fn luhn(s: &str) -> bool {
    let d = digits(s);
    if d.len() < 2 {
        return false;
    }
    let sum: u32 = d
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &x)| {
            let x = x as u32;
            if i % 2 == 1 {
                let y = x * 2;
                if y > 9 {
                    y - 9
                } else {
                    y
                }
            } else {
                x
            }
        })
        .sum();
    sum % 10 == 0
}

/// IBAN length per country (ISO 13616 registry, the common ones). `None`
/// for countries not listed: then any length 15..=34 is accepted.
pub fn iban_length(country: &str) -> Option<usize> {
    Some(match country {
        "AD" => 24, "AE" => 23, "AL" => 28, "AT" => 20, "AZ" => 28, "BA" => 20, "BE" => 16,
        "BG" => 22, "BH" => 22, "BR" => 29, "BY" => 28, "CH" => 21, "CR" => 22, "CY" => 28,
        "CZ" => 24, "DE" => 22, "DK" => 18, "DO" => 28, "EE" => 20, "EG" => 29, "ES" => 24,
        "FI" => 18, "FO" => 18, "FR" => 27, "GB" => 22, "GE" => 22, "GI" => 23, "GL" => 18,
        "GR" => 27, "GT" => 28, "HR" => 21, "HU" => 28, "IE" => 22, "IL" => 23, "IQ" => 23,
        "IS" => 26, "IT" => 27, "JO" => 30, "KW" => 30, "KZ" => 20, "LB" => 28, "LC" => 32,
        "LI" => 21, "LT" => 20, "LU" => 20, "LV" => 21, "MC" => 27, "MD" => 24, "ME" => 22,
        "MK" => 19, "MR" => 27, "MT" => 31, "MU" => 30, "NL" => 18, "NO" => 15, "PK" => 24,
        "PL" => 28, "PS" => 29, "PT" => 25, "QA" => 29, "RO" => 24, "RS" => 22, "SA" => 24,
        "SC" => 31, "SE" => 24, "SI" => 19, "SK" => 24, "SM" => 27, "TN" => 24, "TR" => 26,
        "UA" => 29, "VA" => 22, "VG" => 24, "XK" => 20,
        _ => return None,
    })
}

/// Full IBAN validation on the compact form (no spaces, upper case):
/// country letters, two check digits, country length, mod-97 == 1.
pub fn iban_valid(compact: &str) -> bool {
    let b = compact.as_bytes();
    if b.len() < 15 || b.len() > 34 {
        return false;
    }
    if !(b[0].is_ascii_uppercase() && b[1].is_ascii_uppercase() && b[2].is_ascii_digit() && b[3].is_ascii_digit()) {
        return false;
    }
    if !b.iter().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit()) {
        return false;
    }
    if let Some(len) = iban_length(&compact[..2]) {
        if len != b.len() {
            return false;
        }
    }
    let rearranged = b[4..].iter().chain(b[..4].iter());
    let mut rem: u32 = 0;
    for &c in rearranged {
        if c.is_ascii_digit() {
            rem = (rem * 10 + (c - b'0') as u32) % 97;
        } else {
            let v = (c - b'A') as u32 + 10;
            rem = (rem * 100 + v) % 97;
        }
    }
    rem == 1
}

/// German Steuerliche Identifikationsnummer: 11 digits, no leading zero, in
/// the first ten digits exactly one digit repeats (twice or three times),
/// and the ISO 7064 MOD 11,10 check digit matches.
pub fn steuer_id_valid(s: &str) -> bool {
    let d = digits(s);
    if d.len() != 11 || d[0] == 0 {
        return false;
    }
    let mut counts = [0u8; 10];
    for &x in &d[..10] {
        counts[x as usize] += 1;
    }
    let repeated: Vec<u8> = counts.iter().copied().filter(|&c| c > 1).collect();
    if repeated.len() != 1 || repeated[0] > 3 {
        return false;
    }
    let mut product: u32 = 10;
    for &x in &d[..10] {
        let mut sum = (x as u32 + product) % 10;
        if sum == 0 {
            sum = 10;
        }
        product = (sum * 2) % 11;
    }
    let mut check = 11 - product;
    if check == 10 {
        check = 0;
    }
    check == d[10] as u32
}

/// German Rentenversicherungsnummer (Sozialversicherungsnummer), compact
/// form `AABBBBBBLSSP`: area number, birth date DDMMYY, initial letter,
/// serial, check digit. The letter becomes its two-digit alphabet position;
/// weights 2,1,2,5,7,1,2,1,2,1,2,1; the products' digit sums mod 10.
pub fn rvnr_valid(compact: &str) -> bool {
    let b = compact.as_bytes();
    if b.len() != 12 || !b[8].is_ascii_uppercase() {
        return false;
    }
    if !b.iter().enumerate().all(|(i, c)| i == 8 || c.is_ascii_digit()) {
        return false;
    }
    let dd = (b[2] - b'0') * 10 + (b[3] - b'0');
    let mm = (b[4] - b'0') * 10 + (b[5] - b'0');
    // days may be raised by 50 for assigned numbers
    let day_ok = (1..=31).contains(&dd) || (51..=81).contains(&dd);
    if !day_ok || !(1..=12).contains(&mm) {
        return false;
    }
    let letter = (b[8] - b'A' + 1) as u32;
    let mut nums: Vec<u32> = b[..8].iter().map(|c| (c - b'0') as u32).collect();
    nums.push(letter / 10);
    nums.push(letter % 10);
    nums.push((b[9] - b'0') as u32);
    nums.push((b[10] - b'0') as u32);
    const W: [u32; 12] = [2, 1, 2, 5, 7, 1, 2, 1, 2, 1, 2, 1];
    let sum: u32 = nums.iter().zip(W).map(|(n, w)| (n * w) / 10 + (n * w) % 10).sum();
    sum % 10 == (b[11] - b'0') as u32
}

/// US SSN ranges: area not 000, 666 or 900-999; group not 00; serial not 0000.
pub fn us_ssn_valid(area: &str, group: &str, serial: &str) -> bool {
    let (Ok(a), Ok(g), Ok(s)) = (area.parse::<u32>(), group.parse::<u32>(), serial.parse::<u32>()) else {
        return false;
    };
    area.len() == 3 && group.len() == 2 && serial.len() == 4 && a != 0 && a != 666 && a < 900 && g != 0 && s != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn luhn_valid_and_invalid() {
        assert!(luhn("4111 1111 1111 1111"));
        assert!(luhn("378282246310005"));
        assert!(luhn("6011-1111-1111-1117"));
        assert!(!luhn("4111 1111 1111 1112"));
        assert!(!luhn("1"));
    }

    #[test]
    fn iban_mod97() {
        assert!(iban_valid("DE89370400440532013000"));
        assert!(iban_valid("GB82WEST12345698765432"));
        assert!(iban_valid("AT611904300234573201"));
        assert!(!iban_valid("DE89370400440532013001"), "wrong check digits");
        assert!(!iban_valid("DE8937040044053201300"), "wrong length for DE");
        assert!(!iban_valid("de89370400440532013000"));
    }

    #[test]
    fn steuer_id_check_digit() {
        // public example numbers with valid check digits
        assert!(steuer_id_valid("86095742719"));
        assert!(steuer_id_valid("47036892816"));
        assert!(steuer_id_valid("65929970489"));
        assert!(steuer_id_valid("57549285017"));
        assert!(steuer_id_valid("25768131411"));
        assert!(!steuer_id_valid("86095742718"), "wrong check digit");
        assert!(!steuer_id_valid("06095742719"), "leading zero");
        assert!(!steuer_id_valid("12345678903"), "no repeated digit");
        assert!(!steuer_id_valid("8609574271"), "too short");
    }

    #[test]
    fn rentenversicherungsnummer_check_digit() {
        assert!(rvnr_valid("15070649C103"));
        assert!(!rvnr_valid("15070649C104"));
        assert!(!rvnr_valid("15073549C103"), "month 35");
        assert!(!rvnr_valid("150706493103"), "no letter");
    }

    #[test]
    fn us_ssn_ranges() {
        assert!(us_ssn_valid("123", "45", "6789"));
        assert!(!us_ssn_valid("000", "45", "6789"));
        assert!(!us_ssn_valid("666", "45", "6789"));
        assert!(!us_ssn_valid("912", "45", "6789"));
        assert!(!us_ssn_valid("123", "00", "6789"));
        assert!(!us_ssn_valid("123", "45", "0000"));
    }
}
