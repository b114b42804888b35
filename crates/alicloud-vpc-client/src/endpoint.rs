//! Where an API lives: the public regional endpoint, the VPC-internal one, or an explicit URL
//! (the emulator, a proxy). One setting for VPC and one for STS.

use url::Url;

use super::error::CloudError;

/// How to reach an API (VPC or STS).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Endpoint {
    /// `https://vpc.<region>.aliyuncs.com` (STS: `https://sts.<region>.aliyuncs.com`).
    #[default]
    Public,
    /// `https://vpc-vpc.<region>.aliyuncs.com` (STS: `https://sts-vpc.<region>.aliyuncs.com`),
    /// reachable only from inside a VPC.
    VpcInternal,
    /// This URL for every region; plain `http` is allowed (the emulator).
    Url(Url),
}

impl Endpoint {
    /// The base URL of the VPC API for a region.
    pub fn url_for(&self, region: &str) -> Result<Url, CloudError> {
        self.product_url("vpc", region)
    }

    /// The base URL of the STS API for a region (STS has an endpoint in every region).
    pub fn sts_url_for(&self, region: &str) -> Result<Url, CloudError> {
        self.product_url("sts", region)
    }

    fn product_url(&self, product: &str, region: &str) -> Result<Url, CloudError> {
        // The region becomes part of a host name, so only its documented alphabet is allowed.
        let valid = !region.is_empty()
            && region.len() <= 64
            && region
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !valid {
            return Err(CloudError::InvalidRegion(region.to_owned()));
        }
        let text = match self {
            Self::Public => format!("https://{product}.{region}.aliyuncs.com/"),
            Self::VpcInternal => format!("https://{product}-vpc.{region}.aliyuncs.com/"),
            Self::Url(url) => return Ok(url.clone()),
        };
        Url::parse(&text).map_err(|e| CloudError::Config(format!("endpoint {text}: {e}")))
    }

    /// Parses an override URL; only `http` and `https` make sense.
    pub fn from_url(url: &str) -> Result<Self, CloudError> {
        let parsed = Url::parse(url)
            .map_err(|e| CloudError::Config(format!("endpoint URL {url:?}: {e}")))?;
        match parsed.scheme() {
            "http" | "https" => Ok(Self::Url(parsed)),
            other => Err(CloudError::Config(format!(
                "endpoint URL scheme {other:?} is not http or https"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        assert_eq!(
            Endpoint::Public.url_for("cn-hangzhou").unwrap().as_str(),
            "https://vpc.cn-hangzhou.aliyuncs.com/"
        );
        assert_eq!(
            Endpoint::VpcInternal
                .url_for("ap-southeast-1")
                .unwrap()
                .as_str(),
            "https://vpc-vpc.ap-southeast-1.aliyuncs.com/"
        );
        let emu = Endpoint::from_url("http://127.0.0.1:8080").unwrap();
        assert_eq!(
            emu.url_for("cn-hangzhou").unwrap().as_str(),
            "http://127.0.0.1:8080/"
        );
        assert_eq!(
            Endpoint::Public
                .sts_url_for("cn-hangzhou")
                .unwrap()
                .as_str(),
            "https://sts.cn-hangzhou.aliyuncs.com/"
        );
        assert_eq!(
            Endpoint::VpcInternal
                .sts_url_for("cn-hangzhou")
                .unwrap()
                .as_str(),
            "https://sts-vpc.cn-hangzhou.aliyuncs.com/"
        );
        assert_eq!(
            emu.sts_url_for("cn-hangzhou").unwrap().as_str(),
            "http://127.0.0.1:8080/"
        );
        let e = Endpoint::Public.url_for("evil.com/x").unwrap_err();
        assert_eq!(e.class(), crate::ErrorClass::NeedsSpecChange);
        assert!(Endpoint::Public.url_for("").is_err());
        assert!(Endpoint::from_url("ftp://x").is_err());
    }
}
