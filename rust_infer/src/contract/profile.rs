//! Model profiles: the defaults a request gets for the fields it leaves out.

/// A model profile. `Mochi1` follows Genmo Mochi-1; `Tiny` suits the small random model
/// that runs on a CPU in local mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Profile {
    Mochi1,
    Tiny,
}

/// Defaults for every optional field except `seed` (which the caller draws fresh).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Defaults {
    pub negative_prompt: &'static str,
    pub num_frames: u32,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub num_inference_steps: u32,
    pub guidance_scale: f64,
}

impl Profile {
    /// In the order exported to Python as `PROFILES`.
    pub const ALL: [Self; 2] = [Self::Mochi1, Self::Tiny];

    pub const fn name(self) -> &'static str {
        match self {
            Self::Mochi1 => "mochi-1",
            Self::Tiny => "tiny",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|profile| profile.name() == name)
    }

    pub const fn defaults(self) -> Defaults {
        match self {
            Self::Mochi1 => Defaults {
                negative_prompt: "",
                num_frames: 163,
                width: 848,
                height: 480,
                fps: 30,
                num_inference_steps: 64,
                guidance_scale: 4.5,
            },
            Self::Tiny => Defaults {
                negative_prompt: "",
                num_frames: 19,
                width: 224,
                height: 128,
                fps: 30,
                num_inference_steps: 8,
                guidance_scale: 4.5,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for profile in Profile::ALL {
            assert_eq!(Profile::from_name(profile.name()), Some(profile));
        }
        assert_eq!(Profile::from_name("mochi"), None);
    }

    #[test]
    fn mochi_defaults_follow_the_model_card() {
        let defaults = Profile::Mochi1.defaults();
        assert_eq!(
            (defaults.width, defaults.height, defaults.fps),
            (848, 480, 30)
        );
        assert_eq!(
            (defaults.num_frames, defaults.num_inference_steps),
            (163, 64)
        );
    }
}
