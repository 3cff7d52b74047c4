"""How coarsely the encoder quantised the picture, read from the bitstream (H.264 QP).

A no-reference picture metric cannot tell intended film grain from noise: x264 at a high CRF
wipes grain out of flat areas, and the picture then *looks* cleaner to `noise_sigma` while a
viewer (and SSIM against the grainy original) sees detail lost. The quantisation parameter is
the encoder's own statement of how much it threw away, whatever the content: the step size of
H.264's quantiser doubles every 6 QP, and QP ≈ 20 is visually transparent for most content
while QP ≥ 40 is heavily degraded. Bitstream models of compressed-video quality rely on it for
that reason (ITU-T P.1204.3 uses the QP of every frame).

FFmpeg's H.264 decoder exports each frame's QP and every macroblock's offset from it when asked
(`export_side_data=venc_params`), as an AVVideoEncParams side-data buffer. Other codecs
(VP9's 0-255 scale, MPEG-2's qscale, codecs that export nothing) give None: the composite then
leaves the metric out rather than compare numbers on different scales.
"""

from __future__ import annotations

from typing import Any

import av
import numpy as np
from av.sidedata.sidedata import SideDataContainer

# Decoder option that makes FFmpeg attach AVVideoEncParams to every decoded frame.
DECODER_OPTIONS = {"export_side_data": "venc_params"}
# AVVideoEncParamsType: AV_VIDEO_ENC_PARAMS_VP9 = 0, AV_VIDEO_ENC_PARAMS_H264 = 1, MPEG2 = 2.
_H264 = 1
_ENC_PARAMS = av.sidedata.sidedata.Type.VIDEO_ENC_PARAMS
# AVVideoBlockParams is {int src_x, src_y, w, h; int32_t delta_qp}: delta_qp is its 5th int32.
_DELTA_QP_INDEX = 4


def frame_qp(frame: Any) -> float | None:
    """Mean H.264 QP over the frame's macroblocks, or None when the decoder exported none."""
    # A container of our own: `frame.side_data` caches one on the frame that points back at
    # it, and frames in that cycle wait for the garbage collector (+115 MB peak at 720p).
    params = SideDataContainer(frame).get(_ENC_PARAMS)
    if params is None or params.codec_type != _H264:
        return None
    if params.nb_blocks == 0:
        return float(params.qp)
    # Read the blocks' offsets straight from the side-data buffer (PyAV's qp_map() builds the
    # same numbers in a Python loop: 25 times slower, a third of the metrics pass at 360p).
    # H.264 blocks are all 16×16 macroblocks, so the plain mean is the area-weighted one.
    words = np.frombuffer(params, dtype=np.int32, count=params.buffer_size // 4)
    first = params.blocks_offset // 4 + _DELTA_QP_INDEX
    step = params.block_size // 4
    deltas = words[first : first + step * params.nb_blocks : step]
    return float(params.qp + deltas.mean())
