"""Disclosure control: which published counts to mask (``disclosure``) and the exact interval
audit that judges a set of masks (``audit``). Engine-free and store-free, below every step: the
store applies it to every table it publishes, the prediction step to its model card."""
