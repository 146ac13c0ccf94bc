"""What the modes' operations share: the Operation steps and the common checks (base), model
families and sampler bindings (families), safe image decoding (images), masks and the
full-resolution composite (masks), working sizes and the outpaint geometry (sizing), and the
input picture at full and working size (inputs).

The modes themselves, each with its request and operation, live in backend/modes/.
"""
