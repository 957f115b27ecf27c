/* RP2040 second-stage bootloader (boot2). The bootrom copies the first 256 bytes of flash to SRAM
 * at 0x20041f00, checks their CRC-32 (the last word) and runs them (RP2040 datasheet 2.8.1). This
 * one sets the flash interface up for execute-in-place with the standard 03h read command through
 * the bootrom's own flash_enter_cmd_xip ('CX', datasheet 2.8.3.1.3), which any SPI flash answers,
 * then starts the application whose vector table follows at 0x10000100. Position-independent: it
 * runs at another address than it is linked at. The CRC word is checked by
 * tests/toolchain/test_firmware_chips.py (CRC-32/MPEG-2 of bytes 0..251, as the bootrom computes it). */
    .syntax unified
    .cpu cortex-m0plus
    .thumb

    .section .boot2, "ax"
    .global edgec_boot2
    .type edgec_boot2, %function
edgec_boot2:
    movs r3, #0x18
    ldrh r3, [r3]           /* rom_table_lookup */
    movs r0, #0x14
    ldrh r0, [r0]           /* the bootrom's function table */
    ldr r1, =0x5843         /* 'C' | 'X' << 8: flash_enter_cmd_xip */
    blx r3
    blx r0
    ldr r0, =0x10000100     /* the application's vector table */
    ldr r1, =0xE000ED08     /* SCB VTOR */
    str r0, [r1]
    ldr r1, [r0]
    msr msp, r1
    ldr r1, [r0, #4]
    bx r1
    .ltorg
    .space 252 - (. - edgec_boot2)
    .word 0x29d38fca        /* CRC-32/MPEG-2 of the 252 bytes above */
