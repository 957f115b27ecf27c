/* Bitwise CRC-32 (polynomial 0xEDB88320, as zlib.crc32): small in flash, and it runs outside
 * the measured inference. */
#include "edgec_fw.h"

uint32_t crc32_update(uint32_t crc, const uint8_t *data, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        crc ^= data[i];
        for (int k = 0; k < 8; k++) {
            crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
        }
    }
    return crc;
}
