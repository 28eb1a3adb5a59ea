/* Host stand-in (see README.md): the sdkconfig values te_shell.c reads. */
#pragma once
#define CONFIG_ESP_CONSOLE_UART_NUM 0
