"""What every layer uses: the error users see, the hardware's facts, files written whole or not at all."""
