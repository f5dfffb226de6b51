//! Sliding-window geometry shared by Conv and the pools: for every output
//! position and kernel tap, where the tap lands in the (padded) input.

use crate::index::unravel;
use qcc_ir::numel;

/// Where one kernel tap of one output position reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tap {
    /// Inside the input, at this flat spatial offset.
    Input(usize),
    /// In the explicit padding.
    Pad,
    /// Past the end padding (only with pooling's ceil_mode).
    Beyond,
}

/// Geometry of a window sliding over the spatial dims of an input.
pub struct Window<'a> {
    pub input: &'a [usize],
    pub output: &'a [usize],
    pub kernel: &'a [usize],
    pub strides: &'a [usize],
    pub dilations: &'a [usize],
    /// `[begin…, end…]`
    pub pads: &'a [usize],
}

impl Window<'_> {
    /// Taps for every (output position, kernel position), indexed `o * K + k`
    /// with `o` and `k` flat row-major over the output and kernel shapes.
    pub fn taps(&self) -> Result<Vec<Tap>, String> {
        let r = self.input.len();
        if [self.output, self.kernel, self.strides, self.dilations]
            .iter()
            .any(|v| v.len() != r)
            || self.pads.len() != 2 * r
        {
            return Err(format!(
                "internal: window attributes do not match {r} spatial dims"
            ));
        }
        let (no, nk) = (numel(self.output), numel(self.kernel));
        let mut out = Vec::with_capacity(no * nk);
        let (mut oc, mut kc) = (vec![0; r], vec![0; r]);
        for o in 0..no {
            unravel(o, self.output, &mut oc);
            for k in 0..nk {
                unravel(k, self.kernel, &mut kc);
                // Per dim: inside the input, in the padding, or past it.
                let (mut in_pad, mut beyond) = (false, false);
                let mut off = 0usize;
                for d in 0..r {
                    let pos = (oc[d] * self.strides[d] + kc[d] * self.dilations[d]) as i64
                        - self.pads[d] as i64;
                    let len = self.input[d] as i64;
                    if pos >= 0 && pos < len {
                        off = off * self.input[d] + pos as usize;
                    } else if pos >= -(self.pads[d] as i64) && pos < len + self.pads[d + r] as i64 {
                        in_pad = true;
                    } else {
                        beyond = true;
                    }
                }
                out.push(if beyond {
                    Tap::Beyond
                } else if in_pad {
                    Tap::Pad
                } else {
                    Tap::Input(off)
                });
            }
        }
        Ok(out)
    }
}
